"""What a fault rule may say (its methods, its largest numbers), without the sandbox's web
stack: the command line reads these for its options (:mod:`qualflow.sandbox.faults` uses them)."""

from __future__ import annotations

from enum import StrEnum

__all__ = ["MAX_DELAY", "MAX_RATE_LIMIT", "MAX_RETRY_AFTER", "HttpMethod"]

#: The highest brand limit the sandbox takes (requests per minute): above it, a limit would
#: never be reached, so it is a typo, not a limit.
MAX_RATE_LIMIT = 1_000_000


class HttpMethod(StrEnum):
    """The methods a fault rule may be limited to."""

    GET = "GET"
    HEAD = "HEAD"
    POST = "POST"
    PUT = "PUT"
    PATCH = "PATCH"
    DELETE = "DELETE"
    OPTIONS = "OPTIONS"


#: The longest latency or hang a rule may add (seconds): longer is a typo, not a test.
MAX_DELAY = 300.0
#: The longest Retry-After a rule may send (seconds; a day).
MAX_RETRY_AFTER = 86_400
