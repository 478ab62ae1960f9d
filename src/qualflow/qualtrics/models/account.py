"""Who the credentials belong to."""

from __future__ import annotations

from qualflow.qualtrics.models._base import ApiModel

__all__ = ["WhoAmI"]


class WhoAmI(ApiModel):
    """``GET /whoami``: the user behind the token, their brand and datacenter."""

    user_id: str
    brand_id: str | None = None
    user_name: str | None = None
    account_type: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    datacenter: str | None = None
