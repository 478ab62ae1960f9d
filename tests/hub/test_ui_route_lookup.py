"""The UI's url_for: the same paths as Starlette's ``request.url_for``, without walking every
route of every included router on each link of a page."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from fastapi import APIRouter, FastAPI, Request
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from starlette.convertors import (
    Convertor,
    FloatConvertor,
    IntegerConvertor,
    PathConvertor,
    StringConvertor,
    UUIDConvertor,
)
from starlette.routing import NoMatchFound

from qualflow.settings import Settings
from qualflow.web.app import create_app
from qualflow.web.ui.rendering import url_path

ROOT_PATHS = ["", "/qualflow", "/hub/qualflow/"]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    # Routes only: the lifespan (database, engine) is never entered.
    data_dir: Path = tmp_path_factory.mktemp("lookup") / "data"
    settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir}.db",
        secret_keys=[SecretStr(Fernet.generate_key().decode())],
    )
    return create_app(settings, engine="off")


@pytest.fixture(scope="module")
def convertor_app() -> FastAPI:
    """Routes with every convertor Starlette has, in an included router and a mount."""
    app = FastAPI()
    router = APIRouter()

    @router.get("/items/{item_id:int}/at/{when:float}", name="item")
    def item(item_id: int, when: float) -> None: ...

    @router.get("/tokens/{token:uuid}/{name}", name="token")
    def token(token: uuid.UUID, name: str) -> None: ...

    @router.get("/files/{folder:path}/meta", name="file_meta")
    def file_meta(folder: str) -> None: ...

    app.include_router(router, prefix="/v{version:int}")
    app.mount("/assets", app=FastAPI(), name="assets")
    return app


def request_for(app: FastAPI, root_path: str = "") -> Request:
    return Request(
        {
            "type": "http",
            "app": app,
            "router": app.router,
            "root_path": root_path,
            "path": f"{root_path.rstrip('/')}/",
            "method": "GET",
            "headers": [(b"host", b"hub.example.org")],
            "query_string": b"",
            "scheme": "https",
            "server": ("hub.example.org", 443),
        }
    )


def leaf_routes(app: FastAPI) -> Iterator[Any]:
    """Every route as the app's router tries it, included routers flattened."""
    for route in app.routes:
        contexts = getattr(route, "effective_route_contexts", None)
        if contexts is not None:
            yield from contexts()
        else:
            yield route


SAMPLES: dict[type[Convertor[Any]], Any] = {
    IntegerConvertor: 42,
    StringConvertor: "abc-1",
    PathConvertor: "css/app.css",
    FloatConvertor: 1.5,
    UUIDConvertor: uuid.UUID("12345678-1234-5678-1234-567812345678"),
}


def named_routes(app: FastAPI) -> list[tuple[str, dict[str, Convertor[Any]]]]:
    found = {}
    for route in leaf_routes(app):
        name = getattr(route, "name", None)
        if name:
            convertors = dict(getattr(route, "param_convertors", {}))
            found[(name, tuple(sorted(convertors)))] = (name, convertors)
    return list(found.values())


def outcome(lookup: Callable[[], str]) -> tuple[Any, ...]:
    try:
        return ("path", lookup())
    except Exception as exc:  # the same failure, whatever it is
        return ("error", type(exc), str(exc))


def test_the_app_has_routes_of_every_convertor_the_ui_uses(app: FastAPI) -> None:
    convertors = {
        type(convertor) for _, params in named_routes(app) for convertor in params.values()
    }
    assert {StringConvertor, PathConvertor} <= convertors
    assert "static" in {name for name, _ in named_routes(app)}


@pytest.mark.parametrize("root_path", ROOT_PATHS)
def test_every_named_route_gets_the_path_request_url_for_gives(
    app: FastAPI, convertor_app: FastAPI, root_path: str
) -> None:
    checked = 0
    for request, (name, convertors) in [
        (request_for(each, root_path), route)
        for each in (app, convertor_app)
        for route in named_routes(each)
    ]:
        params = {key: SAMPLES[type(convertor)] for key, convertor in convertors.items()}
        expected = request.url_for(name, **params).path
        assert url_path(request, name, **params) == expected, (name, params)
        # Asked again (from the cache), still the same.
        assert url_path(request, name, **params) == expected, (name, params)
        checked += 1
    assert checked > 50


@pytest.mark.parametrize("root_path", ROOT_PATHS)
def test_static_files_and_prefixed_paths(app: FastAPI, root_path: str) -> None:
    request = request_for(app, root_path)
    prefix = root_path.rstrip("/")
    assert url_path(request, "static", path="css/app.css") == f"{prefix}/static/css/app.css"
    assert url_path(request, "static", path="/css/app.css") == f"{prefix}/static/css/app.css"
    assert url_path(request, "ui_run", run_id="a/b") == f"{prefix}/runs/a/b"


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("no_such_page", {}),
        ("ui_run", {}),  # a known route without its parameter
        ("ui_outbox", {"page": 2}),  # a known route with one it does not take
        ("static", {}),
    ],
)
def test_what_does_not_exist_raises_no_match_found_as_before(
    app: FastAPI, name: str, params: dict[str, Any]
) -> None:
    request = request_for(app)
    with pytest.raises(NoMatchFound) as before:
        request.url_for(name, **params)
    for _ in range(2):  # first lookup, then from the cache
        with pytest.raises(NoMatchFound) as now:
            url_path(request, name, **params)
        assert str(now.value) == str(before.value)


def test_a_repeated_lookup_asks_only_the_route_it_found(
    app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = request_for(app)
    asked: list[str] = []
    for route in leaf_routes(app):
        original = route.url_path_for

        def counting(name: str, /, __original: Any = original, **params: Any) -> Any:
            asked.append(name)
            return __original(name, **params)

        monkeypatch.setattr(route, "url_path_for", counting, raising=False)
    first = url_path(request, "ui_run", run_id="r-1")
    outcome(lambda: url_path(request, "no_such_page"))
    asked.clear()

    again = url_path(request, "ui_run", run_id="r-2")
    unknown_again = outcome(lambda: url_path(request, "no_such_page"))

    assert (first, again) == ("/runs/r-1", "/runs/r-2")
    assert asked == ["ui_run"]
    assert unknown_again[:2] == ("error", NoMatchFound)


def test_routes_added_after_a_lookup_are_found() -> None:
    app = FastAPI()
    request = request_for(app)
    with pytest.raises(NoMatchFound):
        url_path(request, "late")

    @app.get("/late/{item_id:int}", name="late")
    def late(item_id: int) -> None: ...

    app.mount("/files", app=FastAPI(), name="files")
    request = request_for(app)  # the next request

    assert url_path(request, "late", item_id=3) == "/late/3"
    assert url_path(request, "files", path="x/y") == "/files/x/y"


@hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    root_path=st.sampled_from(ROOT_PATHS),
    number=st.integers(min_value=-5, max_value=10**12),
    text=st.text(min_size=0, max_size=12),
)
def test_any_parameter_value_gives_what_request_url_for_gives(
    app: FastAPI, convertor_app: FastAPI, root_path: str, number: int, text: str
) -> None:
    for request, (name, convertors) in [
        (request_for(each, root_path), route)
        for each in (app, convertor_app)
        for route in named_routes(each)
    ]:
        params: dict[str, Any] = {}
        for key, convertor in convertors.items():
            if isinstance(convertor, IntegerConvertor):
                params[key] = number
            elif isinstance(convertor, (StringConvertor, PathConvertor)):
                params[key] = text
            else:
                params[key] = SAMPLES[type(convertor)]
        now = outcome(lambda: url_path(request, name, **params))  # noqa: B023 - called at once
        before = outcome(lambda: request.url_for(name, **params).path)  # noqa: B023
        assert now == before, (name, params)
