"""Which provider class pays an incentive's rewards."""

from __future__ import annotations

from qualflow.incentives.models import Incentive
from qualflow.incentives.providers.base import ProviderContext, RewardProvider
from qualflow.incentives.providers.gift_codes import GiftCodeProvider
from qualflow.incentives.providers.manual import ManualProvider
from qualflow.incentives.providers.tango import TangoProvider

PROVIDERS: dict[str, type[RewardProvider]] = {
    "tango": TangoProvider,
    "gift_codes": GiftCodeProvider,
    "manual": ManualProvider,
}


def provider_named(name: str, context: ProviderContext) -> RewardProvider:
    try:
        return PROVIDERS[name](context)
    except KeyError:
        raise ValueError(f"unknown provider {name!r} (tango, gift_codes, manual)") from None


def provider_for(incentive: Incentive, context: ProviderContext) -> RewardProvider:
    """The provider of an incentive."""
    return provider_named(incentive.provider, context)
