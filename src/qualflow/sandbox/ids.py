"""Identifier generators in the formats Qualtrics uses (``SV_`` + 15 alphanumerics, ...)."""

from __future__ import annotations

import secrets
import string
import uuid

_ALNUM = string.ascii_letters + string.digits


# 62 * 4 = 248: bytes below it map uniformly onto the alphabet; the rest are redrawn.
_LIMIT = len(_ALNUM) * 4


def random_alnum(length: int) -> str:
    """A random string of ASCII letters and digits (CSPRNG, unbiased)."""
    out: list[str] = []
    while len(out) < length:
        out.extend(_ALNUM[b % 62] for b in secrets.token_bytes(length * 2) if b < _LIMIT)
    return "".join(out[:length])


def prefixed(prefix: str, length: int = 15) -> str:
    """``prefix`` followed by ``length`` random alphanumerics, e.g. ``prefixed("SV_")``."""
    return prefix + random_alnum(length)


def survey_id() -> str:
    return prefixed("SV_")


def response_id() -> str:
    return prefixed("R_")


def user_id() -> str:
    return prefixed("UR_")


def export_progress_id() -> str:
    return prefixed("ES_")


def subscription_id() -> str:
    return prefixed("SUB_")


def directory_id() -> str:
    return prefixed("POOL_")


def mailing_list_id() -> str:
    return prefixed("CG_")


def contact_id() -> str:
    return prefixed("CID_")


def contact_lookup_id() -> str:
    return prefixed("CGC_")


def distribution_id() -> str:
    return prefixed("EMD_")


def message_id() -> str:
    return prefixed("MS_")


def block_id() -> str:
    return prefixed("BL_")


def group_id() -> str:
    return prefixed("GR_")


def response_set_id() -> str:
    return prefixed("RS_")


def file_id() -> str:
    """Export file ids look like ``1dc4c492-fbb6-4713-a7ba-bae9b988a965-def``."""
    return f"{uuid.uuid4()}-def"


def request_id() -> str:
    return str(uuid.uuid4())


def api_token() -> str:
    """API tokens are 40 alphanumerics."""
    return random_alnum(40)


def oauth_secret() -> str:
    return secrets.token_urlsafe(48)


def oauth_client_id() -> str:
    return secrets.token_hex(16)
