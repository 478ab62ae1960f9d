"""Manual rewards: recorded for someone to pay by hand, exported as CSV, then marked paid."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session

from qualflow.incentives.models import Reward
from qualflow.incentives.money import MoneyError, check_currency, to_minor
from qualflow.incentives.providers.base import (
    Delivery,
    OrderRequest,
    ProviderHealth,
    ResolvedValue,
    RewardProvider,
)


class ManualProvider(RewardProvider):
    """Approved rewards wait in ``ordered`` until a person marks them paid (then ``sent``)."""

    name = "manual"

    async def resolve_value(
        self,
        *,
        amount: Decimal | None,
        currency: str | None,
        utid: str | None,
        tango_account_id: int | None,
        gift_code_pool_id: int | None,
    ) -> ResolvedValue:
        if amount is None or currency is None:
            raise ValueError("a manual incentive needs amount and currency")
        try:
            code = check_currency(currency)
            return ResolvedValue(to_minor(amount, code), code, "reward")
        except MoneyError as exc:
            raise ValueError(str(exc)) from None

    async def health(
        self,
        *,
        amount_minor: int,
        currency: str,
        utid: str | None,
        tango_account_id: int | None,
        gift_code_pool_id: int | None,
        low_stock_threshold: int,
    ) -> ProviderHealth:
        def waiting() -> int:
            with self.context.sessionmaker() as session:
                return int(
                    session.scalar(
                        select(func.count())
                        .select_from(Reward)
                        .where(Reward.provider == "manual", Reward.status == "ordered")
                    )
                    or 0
                )

        count = await asyncio.to_thread(waiting)
        return ProviderHealth(
            ok=True,
            summary=f"paid by hand; {count} reward(s) of manual incentives await payment",
            details={"awaiting_payment": count},
        )

    orders_in_session = True

    def order_in_session(self, session: Session | Connection, request: OrderRequest) -> Delivery:
        return Delivery(complete=False, hint="to be paid by hand")

    async def order(self, request: OrderRequest) -> Delivery:
        return Delivery(complete=False, hint="to be paid by hand")

    async def preview(self, request: OrderRequest) -> Delivery:
        return Delivery(complete=False, hint="test reward: would be recorded for payment by hand")
