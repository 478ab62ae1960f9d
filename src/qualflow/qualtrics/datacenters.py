"""Where a Qualtrics account's API lives: datacenter ids, brand hosts, and the API base URL."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx

from qualflow.qualtrics.errors import ConfigurationError

__all__ = ["DATACENTERS", "ApiLocation", "datacenter_of_host", "resolve_location"]

#: Datacenter ids accepted by ``Client(datacenter=...)``. The first block is the ``servers`` list
#: of Qualtrics' own OpenAPI spec; the second are ids still live in accounts and real client code.
DATACENTERS: dict[str, str] = {
    "yul1": "Canadian Data Center",
    "iad1": "Washington, DC Area Data Center (previously CO1)",
    "sjc1": "San Jose, California Data Center (previously AZ)",
    "fra1": "European Union Data Center (previously EU2 or EU)",
    "lhr1": "London, United Kingdom Data Center",
    "syd1": "Sydney, Australia Data Center (previously AU1)",
    "sin1": "Singapore Data Center",
    "hnd1": "Tokyo, Japan Data Center",
    "gov1": "US Government Data Center",
    "ca1": "Canada (legacy id, e.g. youraccount.ca1.qualtrics.com)",
    "pdx1": "Portland, Oregon Data Center",
    "co1": "Washington, DC Area (legacy id of iad1)",
    "az1": "San Jose, California (legacy id of sjc1)",
    "eu": "European Union (legacy id of fra1)",
    "eu2": "European Union (legacy id of fra1)",
    "au1": "Sydney, Australia (legacy id of syd1)",
}

_API_PATH = "/API/v3"
#: A host name or IPv4 address as httpx gives it (IDNA names already as xn--…; IPv6 has ":").
_HOST_NAME = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")
_HOST_DATACENTER = re.compile(r"^(?:[a-z0-9-]+\.)?([a-z0-9]+)\.qualtrics\.com$")


@dataclass(frozen=True)
class ApiLocation:
    """The resolved place to talk to: ``api_base`` for ``/API/v3`` calls, ``root`` for OAuth."""

    root: str
    datacenter: str | None

    @property
    def api_base(self) -> str:
        return self.root + _API_PATH

    @property
    def token_url(self) -> str:
        return self.root + "/oauth2/token"

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``: what a ``nextPage`` link must share with us."""
        url = httpx.URL(self.root)
        return f"{url.scheme}://{url.netloc.decode('ascii')}"


def _valid_ids() -> str:
    return ", ".join(DATACENTERS)


def resolve_location(*, datacenter: str | None, base_url: str | None) -> ApiLocation:
    """Turn ``datacenter`` or ``base_url`` (exactly one) into an :class:`ApiLocation`.

    ``base_url`` may be a brand host (``https://acme.qualtrics.com``), a datacenter host, or any
    Qualtrics-compatible server such as the sandbox (``http://127.0.0.1:8765``); a trailing
    ``/API/v3`` is accepted and stripped.
    """
    if datacenter and base_url:
        raise ConfigurationError("give either datacenter or base_url, not both")
    if datacenter:
        dc = datacenter.strip().lower()
        if dc.endswith(".qualtrics.com") or "://" in dc:
            raise ConfigurationError(
                f"datacenter must be an id such as 'iad1', not a host ({datacenter!r}); "
                "pass a host as base_url instead"
            )
        if dc not in DATACENTERS:
            raise ConfigurationError(
                f"unknown Qualtrics datacenter {datacenter!r}; valid ids: {_valid_ids()} "
                "(or pass base_url for a brand host)"
            )
        return ApiLocation(root=f"https://{dc}.qualtrics.com", datacenter=dc)
    if base_url:
        raw = base_url.strip()
        if "://" not in raw:
            raise ConfigurationError(
                f"base_url must be an absolute URL such as https://acme.qualtrics.com, "
                f"got {base_url!r}"
            )
        try:
            url = httpx.URL(raw)
        except httpx.InvalidURL as exc:
            raise ConfigurationError(f"invalid base_url {base_url!r}: {exc}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ConfigurationError(
                f"base_url must be an http(s) URL with a host, got {base_url!r}"
            )
        if url.userinfo:
            # Not echoed: it may hold a password. Qualtrics authenticates by token, never by
            # URL credentials, which would otherwise be dropped without a word.
            raise ConfigurationError(
                "base_url must not carry a user name or password (user:password@): "
                "authenticate with an API token or OAuth client credentials instead"
            )
        if url.query or url.fragment:
            raise ConfigurationError(f"base_url must not carry a query or fragment: {base_url!r}")
        # httpx takes any port number and percent-encodes a host it cannot read ("exa mple"):
        # both would fail later as if the network were down, not as the typo they are.
        if url.port is not None and not 0 < url.port < 65536:
            raise ConfigurationError(
                f"base_url has port {url.port}; a port is 1 to 65535: {base_url!r}"
            )
        if ":" not in url.host and not _HOST_NAME.fullmatch(url.raw_host.decode("ascii")):
            raise ConfigurationError(f"base_url has no valid host name: {base_url!r}")
        path = url.path.rstrip("/")
        if path.lower().endswith(_API_PATH.lower()):
            path = path[: -len(_API_PATH)]
        root = f"{url.scheme}://{url.netloc.decode('ascii')}{path}"
        return ApiLocation(root=root, datacenter=datacenter_of_host(url.host))
    raise ConfigurationError(
        "say where your Qualtrics account lives: datacenter (one of "
        f"{_valid_ids()}) or base_url (e.g. https://acme.qualtrics.com)"
    )


def datacenter_of_host(host: str) -> str | None:
    """The datacenter id in a host like ``fra1.qualtrics.com`` or ``acme.fra1.qualtrics.com``."""
    match = _HOST_DATACENTER.match(host.strip().lower().rstrip("."))
    if match and match.group(1) in DATACENTERS:
        return match.group(1)
    return None
