"""Service users: a dedicated Qualtrics user whose token the hub keeps instead of a person's.

Given a brand administrator's token once, :func:`provision_service_user` finds or creates the
user (default username ``qualflow``), fetches its API token (creating one if it has none) and
checks the token with ``whoami``. The admin token is used for these calls only: never stored,
never logged (it is registered with the log redactor before the first call).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from pydantic import SecretStr

from qualflow.accounts.passwords import generate_password
from qualflow.connections.clients import Credentials, client_for_credentials
from qualflow.connections.errors import CredentialsRejected, ProvisioningFailed
from qualflow.connections.validation import (
    VALIDATION_RETRY,
    Identity,
    check_credentials,
    translate_error,
)
from qualflow.qualtrics import AsyncClient, QualtricsError
from qualflow.qualtrics.errors import BadRequest, NotFound
from qualflow.qualtrics.models import User, UserCreate
from qualflow.store.secrets import register_secret

__all__ = [
    "DEFAULT_SERVICE_USERNAME",
    "ProvisionedUser",
    "ServiceUserRequest",
    "provision_service_user",
]

DEFAULT_SERVICE_USERNAME = "qualflow"


@dataclass(frozen=True)
class ServiceUserRequest:
    """The service user to find or create in the admin's brand."""

    username: str = DEFAULT_SERVICE_USERNAME
    #: Defaults to the admin's own address, so notices about the account reach a person.
    email: str | None = None
    first_name: str = "qualflow"
    last_name: str = "service user"
    #: A ``UT_…`` user type; defaults to the admin's own type (pick a narrower one if you can).
    user_type: str | None = None


@dataclass(frozen=True)
class ProvisionedUser:
    user_id: str
    username: str
    #: The service user's API token: the only credential the hub keeps.
    api_token: str
    created: bool
    identity: Identity


async def _find_user(qualtrics: AsyncClient, username: str) -> User | None:
    wanted = username.lower()
    async for user in qualtrics.users.iter():
        if (user.username or "").lower() == wanted:
            return user
    return None


async def _token_of(qualtrics: AsyncClient, user_id: str) -> str:
    try:
        token = await qualtrics.users.get_api_token(user_id)
    except (BadRequest, NotFound):
        # No token yet (Qualtrics answers 400): issue one. Only then, since issuing a new
        # token would break anything already using the existing one.
        token = await qualtrics.users.create_api_token(user_id)
    value = token.get_secret_value()
    register_secret(value)
    return value


async def provision_service_user(
    admin: Credentials, request: ServiceUserRequest | None = None
) -> ProvisionedUser:
    """Find or create the service user with the admin's credentials; return its token."""
    request = request or ServiceUserRequest()
    register_secret(admin.api_token)
    register_secret(admin.oauth_client_secret)
    username = request.username.strip()
    if not username:
        raise ProvisioningFailed("the service user needs a username")
    doing = "provisioning the service user"
    try:
        async with client_for_credentials(admin, retry=VALIDATION_RETRY) as qualtrics:
            try:
                me = await qualtrics.whoami()
            except QualtricsError as error:
                raise translate_error(error, doing="checking the brand-admin token") from None
            existing = await _find_user(qualtrics, username)
            if existing is not None:
                user_id, created = existing.id, False
            else:
                user_type = request.user_type or me.account_type
                email = request.email or me.email
                if not user_type or not email:
                    raise ProvisioningFailed(
                        "cannot tell which user type and email to give the service user; "
                        "pass user_type and email"
                    )
                user_id = await qualtrics.users.create(
                    UserCreate(
                        username=username,
                        password=SecretStr(generate_password(32)),
                        first_name=request.first_name,
                        last_name=request.last_name,
                        user_type=user_type,
                        email=email,
                    )
                )
                created = True
            token = await _token_of(qualtrics, user_id)
    except QualtricsError as error:
        translated = translate_error(error, doing=doing)
        if isinstance(translated, CredentialsRejected):
            raise ProvisioningFailed(
                f"the brand-admin token may not manage users: {translated.message}"
            ) from None
        raise translated from None

    service = replace(
        admin, api_token=token, oauth_client_id=None, oauth_client_secret=None, oauth_scope=None
    )
    identity = await check_credentials(service)
    if identity.user_id != user_id:
        raise ProvisioningFailed(
            f"the token obtained for {username!r} belongs to another user ({identity.user_id})"
        )
    return ProvisionedUser(
        user_id=user_id, username=username, api_token=token, created=created, identity=identity
    )
