"""JSON documents users hand the engine (events, run data) must be storable and showable."""

from __future__ import annotations

import json
from typing import Any

UNPAIRED_SURROGATE = "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"


def require_utf8(document: Any) -> None:
    """``ValueError`` if a string in ``document`` (key or value) cannot be encoded as UTF-8.

    JSON parsers turn an escape such as ``"\\ud800"`` into such a string; stored in a run, it
    would make every later answer showing the run fail to serialize.
    """
    try:
        json.dumps(document, ensure_ascii=False, default=str).encode()
    except UnicodeEncodeError:
        raise ValueError(UNPAIRED_SURROGATE) from None
