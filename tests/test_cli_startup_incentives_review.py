"""``qualflow incentives review`` starts without the web app: its "no such incentive" answer
(exit code 1, one line) comes from the incentives package itself, not from FastAPI's routers.
Each case runs in a fresh interpreter, as tests/test_cli_startup.py's do."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_startup import _RUNTIME, _loaded, run_probe


def _review(reference: str, tmp_path: Path) -> tuple[int | None, str, set[str]]:
    """Exit code, stderr and the modules imported by ``incentives review REFERENCE``."""
    return run_probe(["incentives", "review", reference], tmp_path)


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        ("INC-7F3K2Q", "error: incentive INC-7F3K2Q does not exist"),
        (" inc-7f3k2q ", "error: incentive INC-7F3K2Q does not exist"),
        ("nonsense", "error: 'nonsense' is not an incentive reference id (like INC-7F3K2Q)"),
    ],
)
def test_reviewing_a_missing_incentive_imports_no_web_app(
    reference: str, reason: str, tmp_path: Path
) -> None:
    code, stderr, modules = _review(reference, tmp_path)

    assert (code, stderr.splitlines()) == (1, [reason])
    assert _loaded(modules, _RUNTIME) == []
