"""Users and groups of a brand."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_serializer

from qualflow.qualtrics.models._base import ApiDatetime, ApiModel, AwareUtcDatetime, RequestModel

__all__ = ["ApiToken", "Group", "GroupCreate", "GroupUpdate", "User", "UserCreate", "UserUpdate"]


class User(ApiModel):
    id: str
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    user_type: str | None = None
    division_id: str | None = None
    account_status: str | None = None
    language: str | None = None
    time_zone: str | None = None
    account_creation_date: ApiDatetime = None
    account_expiration_date: ApiDatetime = None
    last_login_date: ApiDatetime = None


class UserCreate(RequestModel):
    username: str = Field(min_length=1)
    password: SecretStr
    first_name: str
    last_name: str
    user_type: str
    email: str
    language: str = "en"
    time_zone: str | None = None
    division_id: str | None = None
    account_expiration_date: AwareUtcDatetime | None = None

    @field_serializer("password", when_used="json")
    def _reveal_password(self, value: SecretStr) -> str:
        return value.get_secret_value()

    def to_body(self) -> dict[str, object]:
        body = super().to_body()
        body["language"] = self.language  # required by Qualtrics; always send the default
        return body


class UserUpdate(RequestModel):
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    user_type: str | None = None
    division_id: str | None = None
    language: str | None = None
    time_zone: str | None = None
    account_status: str | None = None
    account_expiration_date: AwareUtcDatetime | None = None


class ApiToken(ApiModel):
    """``GET/POST /users/{id}/apitoken``; the token is a secret and never printed."""

    api_token: SecretStr


class Group(ApiModel):
    id: str
    name: str | None = None
    type: str | None = None
    division_id: str | None = None
    creation_date: ApiDatetime = None
    creator_id: str | None = None
    organization_id: str | None = None


class GroupCreate(RequestModel):
    type: str = Field(min_length=1)
    name: str = Field(min_length=1)
    division_id: str | None = None


class GroupUpdate(RequestModel):
    name: str | None = None
    type: str | None = None
    division_id: str | None = None
