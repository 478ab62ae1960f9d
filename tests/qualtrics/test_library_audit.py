"""The client as a demanding Python developer uses it: parity, reprs, pickling, logging,
configuration errors at construction, typing, and the README's example — against the sandbox."""

from __future__ import annotations

import inspect
import logging
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from qualflow.qualtrics import AsyncClient, Client
from qualflow.qualtrics import errors as E
from qualflow.qualtrics.auth import OAuthCredentials
from qualflow.qualtrics.transports import SyncASGITransport
from qualflow.sandbox import SandboxState, create_app
from qualflow.sandbox.seed import customer_satisfaction

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "TOKENsecretABCDEFGH123456"
SECRET = "oauthSECRETzyxw987654321"


@pytest.fixture
def sandbox() -> tuple[SandboxState, Any, str]:
    state = SandboxState()
    _user, token = state.create_user("audit@example.com")
    return state, create_app(state), token


def _public(obj: object) -> set[str]:
    return {name for name in dir(obj) if not name.startswith("_")}


def _params(fn: Any) -> list[tuple[str, Any, Any, str]]:
    # from_env's keywords are typed by ClientSettings / AsyncClientSettings.
    return [
        (p.name, p.kind, p.default, str(p.annotation).replace("AsyncClient", "Client"))
        for p in inspect.signature(fn).parameters.values()
    ]


# -- sync/async parity ---------------------------------------------------------------------


def test_every_resource_method_has_the_same_signature_on_both_clients() -> None:
    sync = Client(base_url="http://sandbox.test", api_token=TOKEN)
    asyn = AsyncClient(base_url="http://sandbox.test", api_token=TOKEN)
    lifecycle = {"close", "aclose"}
    assert _public(sync) - lifecycle == _public(asyn) - lifecycle
    resources = 0
    for name in sorted(_public(sync) - lifecycle):
        mine, theirs = getattr(sync, name), getattr(asyn, name)
        if inspect.ismethod(mine):
            assert _params(mine) == _params(theirs), name
            ret_sync = inspect.signature(mine).return_annotation
            assert ret_sync == inspect.signature(theirs).return_annotation, name
            if name != "from_env":
                assert inspect.iscoroutinefunction(theirs), name
        elif type(mine).__module__.startswith("qualflow.qualtrics.resources"):
            resources += 1
            assert _public(mine) == _public(theirs), name
            for method in sorted(_public(mine)):
                fn_sync, fn_async = getattr(mine, method), getattr(theirs, method)
                if not callable(fn_sync):
                    continue
                assert _params(fn_sync) == _params(fn_async), f"{name}.{method}"
                r_sync = str(inspect.signature(fn_sync).return_annotation)
                r_async = str(inspect.signature(fn_async).return_annotation)
                # A pager's async twin is an AsyncPager of the same items.
                assert r_sync.replace("SyncPager", "AsyncPager") == r_async, f"{name}.{method}"
    assert resources == 11
    sync.close()
    anyio.run(asyn.aclose)


def test_both_clients_close_their_http_clients_as_context_managers() -> None:
    with Client(base_url="http://sandbox.test", api_token=TOKEN) as sync:
        assert not sync._http.is_closed
    assert sync._http.is_closed

    async def run() -> AsyncClient:
        async with AsyncClient(base_url="http://sandbox.test", api_token=TOKEN) as asyn:
            assert not asyn._http.is_closed
        return asyn

    assert anyio.run(run)._http.is_closed


# -- secrets in reprs, logs ------------------------------------------------------------------


def test_reprs_never_show_the_token_or_the_oauth_secret() -> None:
    oauth = OAuthCredentials("client-id", SECRET)
    shown = [
        repr(Client(datacenter="iad1", api_token=TOKEN)),
        str(Client(datacenter="iad1", api_token=TOKEN)),
        repr(AsyncClient(datacenter="iad1", oauth=oauth)),
        repr(oauth),
        str(oauth),
    ]
    for text in shown:
        assert TOKEN not in text
        assert TOKEN[-8:] not in text
        assert SECRET not in text
        assert SECRET[-8:] not in text


def test_the_library_configures_no_logging_and_logs_no_secret(
    sandbox: tuple[SandboxState, Any, str], caplog: pytest.LogCaptureFixture
) -> None:
    state, app, token = sandbox
    client_id, secret = state.add_oauth_client(state.create_user("o@example.com")[0].id)
    before = {name: list(logging.getLogger(name).handlers) for name in ("", "qualflow")}
    caplog.set_level(logging.DEBUG)
    transport = SyncASGITransport(app)
    with Client(base_url="http://sandbox.test", api_token=token, transport=transport) as q:
        q.whoami()
        with pytest.raises(E.NotFound):
            q.surveys.get("SV_doesnotexist")
    oauth = OAuthCredentials(client_id, secret)
    with Client(base_url="http://sandbox.test", oauth=oauth, transport=transport) as q:
        q.whoami()
    transport.close()
    for name, handlers in before.items():
        assert logging.getLogger(name).handlers == handlers
    assert logging.getLogger("qualflow.qualtrics").handlers == []
    text = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    assert token not in text
    assert secret not in text


# -- errors cross process boundaries ---------------------------------------------------------


ERRORS = [
    E.NotFound("no such survey", status_code=404, error_code="GS_1", request_id="r-1"),
    E.RateLimited("slow down", retry_after=2.5, status_code=429, request_id="r-2"),
    E.ServerError("boom", status_code=503, error_code="SE_1", request_id="r-3"),
    E.TransportError("connect failed", request_sent=False),
    E.RateLimiterBusy("bucket empty", retry_after=1.5),
    E.ForeignNextPage("https://evil.example/next", "https://iad1.qualtrics.com"),
    E.ExportFailed("failed", progress_id="ES_1", request_id="r-4"),
    E.ExportTimeout("too slow", progress_id="ES_2"),
    E.ConfigurationError("bad"),
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_errors_pickle_and_keep_what_they_carry(error: E.QualtricsError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert vars(copy) == vars(error)
    assert str(copy) == str(error)
    assert copy.retriable == error.retriable


def test_an_error_from_the_sandbox_pickles_with_status_code_and_request_id(
    sandbox: tuple[SandboxState, Any, str],
) -> None:
    _state, app, token = sandbox
    transport = SyncASGITransport(app)
    with (
        Client(base_url="http://sandbox.test", api_token=token, transport=transport) as q,
        pytest.raises(E.NotFound) as caught,
    ):
        q.surveys.get("SV_doesnotexist")
    transport.close()
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.status_code, copy.error_code, copy.error_message, copy.request_id) == (
        404,
        caught.value.error_code,
        caught.value.error_message,
        caught.value.request_id,
    )
    assert copy.request_id


def test_the_datacenter_notice_warning_pickles() -> None:
    notice = E.DatacenterNotice("use fra1", host="fra1.qualtrics.com", datacenter="fra1")
    copy = pickle.loads(pickle.dumps(notice))
    assert (str(copy), copy.host, copy.datacenter, copy.notice) == (
        str(notice),
        "fra1.qualtrics.com",
        "fra1",
        "use fra1",
    )


# -- configuration --------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Client, AsyncClient])
@pytest.mark.parametrize(
    "timeout",
    [-1, -0.5, float("nan"), httpx.Timeout(-1.0), httpx.Timeout(5.0, connect=-1.0)],
    ids=str,
)
def test_a_negative_timeout_is_refused_at_construction(cls: Any, timeout: Any) -> None:
    with pytest.raises(E.ConfigurationError, match="timeout"):
        cls(datacenter="iad1", api_token=TOKEN, timeout=timeout)


@pytest.mark.parametrize("cls", [Client, AsyncClient])
@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"datacenter": "zz9"}, "unknown Qualtrics datacenter"),
        ({"api_token": ""}, "empty"),
        ({"api_token": "   "}, "empty"),
    ],
)
def test_bad_settings_are_refused_at_construction(
    cls: Any, settings: dict[str, Any], match: str
) -> None:
    kwargs: dict[str, Any] = {"datacenter": "iad1", "api_token": TOKEN}
    kwargs.update(settings)
    with pytest.raises(E.ConfigurationError, match=match):
        cls(**kwargs)


def test_timeouts_are_applied_and_none_means_no_timeout() -> None:
    with Client(datacenter="iad1", api_token=TOKEN, timeout=7) as q:
        assert q._http.timeout == httpx.Timeout(7)
    with Client(datacenter="iad1", api_token=TOKEN, timeout=None) as q:
        assert q._http.timeout == httpx.Timeout(None)


def test_user_agent_names_qualflow_and_its_version(sandbox: tuple[SandboxState, Any, str]) -> None:
    from importlib.metadata import version

    _state, app, token = sandbox
    seen: list[str] = []

    def record(request: httpx.Request) -> None:
        seen.append(request.headers["user-agent"])

    inner = SyncASGITransport(app)

    class Recording(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            record(request)
            return inner.handle_request(request)

    with Client(base_url="http://sandbox.test", api_token=token, transport=Recording()) as q:
        q.whoami()
    inner.close()
    assert seen == [f"qualflow/{version('qualflow')} (+httpx)"]


@pytest.mark.parametrize("cls", [Client, AsyncClient])
def test_a_proxy_can_be_given(cls: Any) -> None:
    client = cls(datacenter="iad1", api_token=TOKEN, proxy="http://proxy.example:3128")
    pool = client._http._transport_for_url(httpx.URL("https://iad1.qualtrics.com/API/v3/whoami"))
    assert type(pool).__name__.endswith("HTTPTransport")
    assert pool._pool.__class__.__name__.endswith("HTTPProxy")
    if cls is Client:
        client.close()
    else:
        anyio.run(client.aclose)


def test_a_proxy_and_a_transport_together_are_refused() -> None:
    with pytest.raises(E.ConfigurationError, match="proxy"):
        Client(
            datacenter="iad1",
            api_token=TOKEN,
            proxy="http://proxy.example:3128",
            transport=httpx.MockTransport(lambda r: httpx.Response(500)),
        )


# -- packaging and typing -------------------------------------------------------------------


def test_py_typed_ships_in_the_wheel() -> None:
    assert (ROOT / "src" / "qualflow" / "py.typed").is_file()
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    # hatchling ships every file under the package directory, py.typed included.
    assert re.search(r'packages\s*=\s*\["src/qualflow"\]', pyproject)


USER_SCRIPT = """
from qualflow.qualtrics import AsyncClient, Client
from qualflow.qualtrics.auth import OAuthCredentials
from qualflow.qualtrics.errors import NotFound

def main() -> None:
    with Client(datacenter="iad1", api_token="x", timeout=5.0) as q:
        reveal_type(q.whoami())
        for survey in q.surveys.iter():
            reveal_type(survey)
        export = q.export_responses("SV_1", labels=True, allow_continuation=True)
        reveal_type(export.continuation_token)
        with q.export_responses("SV_1") as newer:
            reveal_type(newer.continuation_token)
        try:
            q.surveys.get("SV_1")
        except NotFound as error:
            reveal_type(error.request_id)

async def amain() -> None:
    async with AsyncClient(datacenter="iad1", oauth=OAuthCredentials("a", "b")) as q:
        reveal_type(await q.whoami())
        async for survey in q.surveys.iter():
            reveal_type(survey)
"""


def test_a_user_script_passes_mypy_strict_without_any(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    script = tmp_path / "user_script.py"
    script.write_text(USER_SCRIPT, encoding="utf-8")
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\nplugins = pydantic.mypy\n", encoding="utf-8")
    out, err, _status = api.run(
        [
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--disallow-any-expr",
            str(script),
        ]
    )
    revealed = re.findall(r'Revealed type is "([^"]+)"', out)
    assert revealed == [
        "qualflow.qualtrics.models.account.WhoAmI",
        "qualflow.qualtrics.models.surveys.SurveySummary",
        "str | None",
        "str | None",
        "str | None",
        "qualflow.qualtrics.models.account.WhoAmI",
        "qualflow.qualtrics.models.surveys.SurveySummary",
    ], out
    assert "error:" not in out, out + err


# -- README ----------------------------------------------------------------------------------


def test_the_readme_client_example_runs_against_the_sandbox(
    sandbox: tuple[SandboxState, Any, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    state, app, token = sandbox
    survey = customer_satisfaction(state)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The Qualtrics client", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match
    code = match.group(1)
    target = 'Client(datacenter="iad1", api_token="…")'
    assert target in code
    code = code.replace(target, "Client(base_url=BASE_URL, api_token=TOKEN, transport=TRANSPORT)")
    code = code.replace("SV_…", survey.id)
    monkeypatch.chdir(tmp_path)
    scratch = tmp_path / "system-temp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    transport = SyncASGITransport(app)
    namespace: dict[str, Any] = {
        "BASE_URL": "http://sandbox.test",
        "TOKEN": token,
        "TRANSPORT": transport,
    }
    exec(compile(code, "README.md", "exec"), namespace)
    transport.close()
    printed = capsys.readouterr().out
    assert "audit@example.com" in printed
    assert survey.id in printed
    assert (tmp_path / "responses.parquet").stat().st_size > 0
    assert namespace["newer"].continuation_token
    # Copied as is, it leaves no download behind in the system's temporary folder.
    assert list(scratch.iterdir()) == []


def test_an_error_repr_shows_what_it_carries(sandbox: tuple[SandboxState, Any, str]) -> None:
    _state, app, _token = sandbox
    transport = SyncASGITransport(app)
    with (
        Client(base_url="http://sandbox.test", api_token=TOKEN, transport=transport) as q,
        pytest.raises(E.AuthError) as caught,
    ):
        q.whoami()
    transport.close()
    error = caught.value
    assert repr(error) == (
        f"AuthError({error.message!r}, status_code=401, error_code={error.error_code!r}, "
        f"request_id={error.request_id!r})"
    )
    assert TOKEN not in repr(error)
    assert repr(E.RateLimiterBusy("bucket empty", retry_after=1.5)) == (
        "RateLimiterBusy('bucket empty')"
    )


def test_mypy_catches_a_misspelt_from_env_keyword(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    script = tmp_path / "from_env_script.py"
    script.write_text(
        "from qualflow.qualtrics import AsyncClient, Client\n"
        "good = Client.from_env(timeout=5.0, requests_per_minute=None)\n"
        "bad = Client.from_env(timout=5.0)\n"
        "also_bad = AsyncClient.from_env(timeout='5')\n",
        encoding="utf-8",
    )
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\nplugins = pydantic.mypy\n", encoding="utf-8")
    out, _err, _status = api.run(
        ["--config-file", str(config), "--cache-dir", str(tmp_path / "cache"), str(script)]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["3", "4"], out


def test_from_env_passes_none_for_settings_where_none_means_something(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from qualflow.qualtrics import Unlimited

    monkeypatch.setenv("QUALTRICS_API_TOKEN", TOKEN)
    monkeypatch.setenv("QUALTRICS_DATACENTER", "iad1")
    monkeypatch.delenv("QUALTRICS_BASE_URL", raising=False)
    monkeypatch.delenv("QUALTRICS_CLIENT_ID", raising=False)
    monkeypatch.delenv("QUALTRICS_CLIENT_SECRET", raising=False)
    # None for a credential or location still means "from the environment"…
    with Client.from_env(base_url=None, requests_per_minute=None, timeout=None) as q:
        assert q.datacenter == "iad1"
        # …but None for the rate or the timeout means "none", as in Client(...).
        assert isinstance(q.rate_limiter, Unlimited)
        assert q._http.timeout == httpx.Timeout(None)


@pytest.mark.parametrize("cls", [Client, AsyncClient])
@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"requests_per_minute": 0}, "requests_per_minute"),
        ({"requests_per_minute": -5}, "requests_per_minute"),
        ({"user_agent": "mine\r\nX-Injected: 1"}, "user_agent"),
        ({"user_agent": "naïve/1.0"}, "user_agent"),
    ],
)
def test_a_bad_rate_or_user_agent_is_a_configuration_error(
    cls: Any, settings: dict[str, Any], match: str
) -> None:
    with pytest.raises(E.ConfigurationError, match=match):
        cls(datacenter="iad1", api_token=TOKEN, **settings)


def test_the_settings_types_are_importable_from_the_package() -> None:
    import qualflow.qualtrics as package

    assert package.ClientSettings.__annotations__.keys() == (
        package.AsyncClientSettings.__annotations__.keys()
    )
    assert {"ClientSettings", "AsyncClientSettings"} <= set(package.__all__)
