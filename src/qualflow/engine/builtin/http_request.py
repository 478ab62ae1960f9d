"""``http.request``: call another system, signed with Standard Webhooks headers.

The signing secret and the values of credential headers (see :func:`is_secret_header`) are
never stored in clear: the API and UI seal them (see :mod:`qualflow.store.sealed`) before the
definition is saved, and they are decrypted here, in the step, only to send the request. Their
plain forms are accepted too (definitions made in code, automations saved before headers were
sealed).
"""

from __future__ import annotations

import binascii
import json
from collections.abc import Callable
from typing import Any, ClassVar, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from qualflow.engine.actions import ActionContext, action
from qualflow.engine.documents import require_utf8
from qualflow.engine.errors import FatalError, RetriableError
from qualflow.engine.templates import check_structure, check_template, render, render_structure
from qualflow.notify.webhooks import signature_headers
from qualflow.store.redact import is_sensitive_key
from qualflow.store.sealed import is_masked, is_sealed, unseal_with_dialect
from qualflow.store.secrets import SecretDecryptionError, SecretKeyError
from qualflow.tls import verified_context

MAX_RESPONSE_KEPT = 8 * 1024

#: Words that make a header name a credential's (``Authorization``, ``X-API-TOKEN``, ``X-Auth``…).
_SECRET_HEADER_WORDS = ("token", "key", "secret", "auth", "password")
#: Standard headers whose name reads like a credential's but whose value is not one.
_NOT_SECRET_HEADERS = frozenset({"idempotency-key"})


def is_secret_header(name: str) -> bool:
    """Whether a header's value is a credential, kept sealed and masked like a step secret."""
    lowered = name.lower()
    if lowered in _NOT_SECRET_HEADERS:
        return False
    return is_sensitive_key(name) or any(word in lowered for word in _SECRET_HEADER_WORDS)


class HttpRequestConfig(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    #: Mapping fields whose entries are step secrets when their key says so (see step_secrets).
    secret_entries: ClassVar[dict[str, Callable[[str], bool]]] = {"headers": is_secret_header}

    url: str = Field(
        description="Target URL (may use templates).", examples=["https://example.org/hook"]
    )
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra headers (values may use templates). Credentials (Authorization, "
        "Cookie, any name with token/key/secret/auth/password) are stored encrypted; answers "
        "show only their last 4 characters, and sending that masked form back keeps them.",
    )
    json_body: Any = Field(
        default=None,
        alias="json",
        description="JSON body; string values may use templates. Default: the run's data.",
    )
    body: str | None = Field(default=None, description="Raw body template (instead of json).")
    signing_secret: SecretStr | None = Field(
        default=None,
        description="Standard Webhooks secret (whsec_…) used to sign the request. Stored "
        "encrypted; answers show only its last 4 characters, and sending that masked form back "
        "keeps the saved secret.",
    )
    timeout_seconds: float = Field(default=15.0, gt=0, le=120)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        check_template(url)
        if "{{" not in url and not url.startswith(("http://", "https://")):
            raise ValueError("url must start with http:// or https://")
        return url

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if is_secret_header(name) and is_sealed(value):
                continue
            if is_secret_header(name) and is_masked(value):
                raise ValueError(
                    f"header {name}: this is the masked form of a secret; enter the secret itself"
                )
            check_template(value)
        return headers

    @field_validator("json_body")
    @classmethod
    def _check_json(cls, value: Any) -> Any:
        return check_structure(value)

    @field_validator("signing_secret")
    @classmethod
    def _check_secret(cls, secret: SecretStr | None) -> SecretStr | None:
        if secret is None:
            return None
        value = secret.get_secret_value()
        if is_sealed(value):
            return secret
        if is_masked(value):
            raise ValueError("this is the masked form of a secret; enter the secret itself")
        if not value:
            return None
        from standardwebhooks.webhooks import Webhook

        try:
            Webhook(value)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not a Standard Webhooks secret (whsec_ followed by base64)") from exc
        return secret

    @field_validator("body")
    @classmethod
    def _check_body(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)


def _unsealed(ctx: ActionContext, value: str, what: str) -> str:
    if not is_sealed(value):
        return value
    bind = ctx.services.sessionmaker.kw["bind"]
    try:
        return unseal_with_dialect(bind.dialect, value)
    except (SecretDecryptionError, SecretKeyError) as exc:
        raise FatalError(f"{what} cannot be decrypted: {exc}") from None


def _default_document(ctx: ActionContext) -> dict[str, Any]:
    ns = ctx.namespace()
    return {
        "run": ns["run"],
        "trigger": ctx.trigger,
        "response": ctx.response,
        "steps": ctx.outputs,
    }


@action("http.request", config=HttpRequestConfig)
async def http_request(ctx: ActionContext, config: HttpRequestConfig) -> dict[str, Any]:
    """Send an HTTP request; 5xx/429/timeouts are retried, other 4xx fail the run."""
    ns = ctx.namespace()
    url = render(config.url, ns)
    if not url.startswith(("http://", "https://")):
        raise FatalError(f"rendered url {url!r} is not an http(s) URL")
    # Case-insensitive, so the defaults below never add a second Content-Type (or
    # Idempotency-Key) next to the user's own spelling of it.
    headers = httpx.Headers(
        {
            name: render(_unsealed(ctx, value, f"the {name} header"), ns)
            for name, value in config.headers.items()
        }
    )
    if config.body is not None:
        content = render(config.body, ns)
        headers.setdefault("content-type", "text/plain; charset=utf-8")
    elif config.method in ("GET", "DELETE") and config.json_body is None:
        content = ""
    else:
        document = (
            render_structure(config.json_body, ns)
            if config.json_body is not None
            else _default_document(ctx)
        )
        content = json.dumps(document, separators=(",", ":"), default=str)
        headers.setdefault("content-type", "application/json")
    if config.signing_secret is not None:
        headers.update(
            signature_headers(
                _unsealed(ctx, config.signing_secret.get_secret_value(), "the signing secret"),
                message_id=ctx.idempotency_key,
                body=content,
            )
        )
    else:
        headers.setdefault("webhook-id", ctx.idempotency_key)
    headers.setdefault("idempotency-key", ctx.idempotency_key)
    client: httpx.AsyncClient | None = ctx.services.extras.get("http_client")
    owned = client is None
    if client is None:
        client = httpx.AsyncClient(timeout=config.timeout_seconds, verify=verified_context())
    try:
        response = await client.request(
            config.method,
            url,
            content=content.encode() if content else None,
            headers=headers,
            timeout=config.timeout_seconds,
        )
    except httpx.TimeoutException as exc:
        raise RetriableError(f"{config.method} {url} timed out: {exc}") from None
    except httpx.TransportError as exc:
        raise RetriableError(f"{config.method} {url} failed: {exc}") from None
    finally:
        if owned:
            await client.aclose()
    text = response.text[:MAX_RESPONSE_KEPT]
    if response.status_code in (408, 425, 429) or response.status_code >= 500:
        retry_after = response.headers.get("retry-after")
        delay = float(retry_after) if retry_after and retry_after.isdigit() else None
        raise RetriableError(
            f"{config.method} {url} answered {response.status_code}: {text[:300]}",
            retry_after=delay,
        )
    if response.status_code >= 400:
        raise FatalError(f"{config.method} {url} answered {response.status_code}: {text[:300]}")
    body: Any = text
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
            # An unpaired surrogate (a receiver's "\ud800") would make the run unshowable.
            require_utf8(body)
        except ValueError:
            body = text
        if len(json.dumps(body, default=str)) > MAX_RESPONSE_KEPT:
            body = text
    return {"status": response.status_code, "body": body}
