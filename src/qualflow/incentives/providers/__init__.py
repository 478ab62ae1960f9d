"""Reward providers behind one interface: Tango (RaaS v2), gift codes, manual payment."""

from qualflow.incentives.providers.base import (
    Credential,
    Delivery,
    OrderRequest,
    ProviderContext,
    ProviderError,
    ProviderHealth,
    ProviderHold,
    ResolvedValue,
    RewardProvider,
)
from qualflow.incentives.providers.registry import provider_for, provider_named

__all__ = [
    "Credential",
    "Delivery",
    "OrderRequest",
    "ProviderContext",
    "ProviderError",
    "ProviderHealth",
    "ProviderHold",
    "ResolvedValue",
    "RewardProvider",
    "provider_for",
    "provider_named",
]
