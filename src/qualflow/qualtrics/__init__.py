"""A typed, sync + async client for the Qualtrics REST API v3.

>>> from qualflow.qualtrics import Client
>>> with Client(datacenter="iad1", api_token="…") as qualtrics:
...     me = qualtrics.whoami()
...     for survey in qualtrics.surveys.iter():
...         print(survey.id, survey.name)
...     export = qualtrics.export_responses("SV_…", format="csv")

``AsyncClient`` has the same surface with ``await`` / ``async for``. Errors are in
:mod:`qualflow.qualtrics.errors`, typed shapes in :mod:`qualflow.qualtrics.models`.
This package depends on httpx, pydantic and pyarrow only, never on the rest of qualflow;
pyarrow is imported only when an export file is read (``ExportFile``, ``ExportResult``).
"""

from typing import TYPE_CHECKING, Any

from qualflow.qualtrics.async_client import AsyncClient, AsyncClientSettings
from qualflow.qualtrics.auth import OAuthCredentials
from qualflow.qualtrics.client import Client, ClientSettings
from qualflow.qualtrics.datacenters import DATACENTERS
from qualflow.qualtrics.errors import (
    APIError,
    AuthError,
    BadRequest,
    ClientClosed,
    ConfigurationError,
    DatacenterNotice,
    ExportFailed,
    ExportTimeout,
    ForeignNextPage,
    NotFound,
    NotYetAvailable,
    PayloadTooLarge,
    PermissionDenied,
    QualtricsError,
    QualtricsWarning,
    RateLimited,
    RateLimiterBusy,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from qualflow.qualtrics.models import (
    ExportOptions,
    ExportProgress,
    Survey,
    SurveyResponse,
    SurveySummary,
    WhoAmI,
)
from qualflow.qualtrics.paging import AsyncPager, SyncPager
from qualflow.qualtrics.ratelimit import Limiter, RateLimiter, Unlimited
from qualflow.qualtrics.resources.exports import CompletedExport, ExportEvent
from qualflow.qualtrics.retry import RetryEvent, RetryPolicy
from qualflow.qualtrics.transports import SyncASGITransport
from qualflow.qualtrics.webhooks import (
    WebhookError,
    WebhookEvent,
    WebhookParseError,
    WebhookVerificationError,
    parse_event,
    verify_hmac,
)

if TYPE_CHECKING:
    from qualflow.qualtrics.export_file import ExportFile, ExportFileError
    from qualflow.qualtrics.export_result import ExportResult

_LAZY = {
    "ExportFile": "qualflow.qualtrics.export_file",
    "ExportFileError": "qualflow.qualtrics.export_file",
    "ExportResult": "qualflow.qualtrics.export_result",
}


def __getattr__(name: str) -> Any:
    # Reading export files needs pyarrow; importing it only then keeps `import` fast.
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DATACENTERS",
    "APIError",
    "AsyncClient",
    "AsyncClientSettings",
    "AsyncPager",
    "AuthError",
    "BadRequest",
    "Client",
    "ClientClosed",
    "ClientSettings",
    "CompletedExport",
    "ConfigurationError",
    "DatacenterNotice",
    "ExportEvent",
    "ExportFailed",
    "ExportFile",
    "ExportFileError",
    "ExportOptions",
    "ExportProgress",
    "ExportResult",
    "ExportTimeout",
    "ForeignNextPage",
    "Limiter",
    "NotFound",
    "NotYetAvailable",
    "OAuthCredentials",
    "PayloadTooLarge",
    "PermissionDenied",
    "QualtricsError",
    "QualtricsWarning",
    "RateLimited",
    "RateLimiter",
    "RateLimiterBusy",
    "RetryEvent",
    "RetryPolicy",
    "ServerError",
    "Survey",
    "SurveyResponse",
    "SurveySummary",
    "SyncASGITransport",
    "SyncPager",
    "TransportError",
    "UnexpectedResponse",
    "Unlimited",
    "WebhookError",
    "WebhookEvent",
    "WebhookParseError",
    "WebhookVerificationError",
    "WhoAmI",
    "parse_event",
    "verify_hmac",
]
