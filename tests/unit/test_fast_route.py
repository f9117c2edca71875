"""`FastRoute`: the common request skips FastAPI's solver and gets the answer FastAPI would give.

A small app in process (no database): one FastRoute shaped like intake's registration, a stub
token validator, the real problem handlers. Each request is sent twice, once on the fast path
and once with a dependency override in place, which sends every request through FastAPI's own
handler; the answers must be the same bytes.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi import routing as fastapi_routing
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from services.intake import app as intake_app
from services.intake.settings import IntakeSettings
from services.registry.cases.schemas import CaseCreate
from shared.auth.deps import require
from shared.auth.fast_route import FastRoute
from shared.auth.principal import Principal
from shared.errors import TooManyRequests, Unauthorized
from shared.problems import install_problem_handlers
from shared.ratelimit import RateLimiter
from shared.state import ApiState, install

WRITER = Principal(
    "w", "writer", frozenset({"things:write"}), "FR", None, "jti-w", datetime.now(UTC)
)
READER = Principal(
    "r", "reader", frozenset({"things:read"}), "FR", None, "jti-r", datetime.now(UTC)
)


class Thing(BaseModel):
    name: Annotated[str, Field(min_length=2)]
    size: int = 1


class _Validator:
    async def validate(self, token: str) -> Principal:
        tokens = {"writer": WRITER, "reader": READER}
        if token not in tokens:
            raise Unauthorized("unknown token")
        return tokens[token]


async def _guard(
    request: Request, principal: Annotated[Principal, require("things:write")]
) -> AsyncIterator[str]:
    if request.headers.get("x-slow-down"):
        raise TooManyRequests("slow down", retry_after=3)
    yield principal.client_id


async def make_thing(
    data: Thing,
    request: Request,
    caller: Annotated[str, Depends(_guard)],
    tag: Annotated[str | None, Header(alias="X-Tag")] = None,
) -> JSONResponse:
    body = {"caller": caller, "name": data.name, "size": data.size, "tag": tag}
    return JSONResponse(body | {"path": request.url.path}, status_code=201)


def _app() -> FastAPI:
    app = FastAPI()
    state = ApiState(
        write_limiter=RateLimiter(rate=1, burst=1), read_limiter=RateLimiter(rate=1, burst=1)
    )
    state.token_validator = _Validator()  # type: ignore[assignment]
    install(app, state)
    install_problem_handlers(app)
    router = APIRouter()
    router.add_api_route(
        "/things", make_thing, methods=["POST"], status_code=201, route_class_override=FastRoute
    )
    app.include_router(router)
    return app


@contextmanager
def solver_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    calls: list[int] = []
    solve = fastapi_routing.solve_dependencies

    async def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return await solve(*args, **kwargs)

    monkeypatch.setattr(fastapi_routing, "solve_dependencies", counted)
    yield calls


async def _send(app: FastAPI, body: bytes, headers: dict[str, str]) -> httpx.Response:
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t.test") as client:
        return await client.post("/things", content=body, headers=headers)


JSON = {"content-type": "application/json"}
REQUESTS = [
    (b'{"name": "kettle"}', {**JSON, "authorization": "Bearer writer"}),
    (b'{"name": "kettle", "size": "3"}', {**JSON, "authorization": "Bearer writer"}),
    (b'{"name": "kettle"}', {**JSON, "authorization": "Bearer writer", "x-tag": "t"}),
    (b'{"name": "kettle"}', {**JSON, "authorization": "Bearer reader"}),
    (b'{"name": "kettle"}', {**JSON, "authorization": "Bearer nobody"}),
    (b'{"name": "kettle"}', {**JSON}),
    (b'{"name": "kettle"}', {**JSON, "authorization": "Bearer writer", "x-slow-down": "1"}),
    (b'{"name": "k"}', {**JSON, "authorization": "Bearer writer"}),
    (b'{"name": "k"}', {**JSON, "authorization": "Bearer nobody"}),
    (b'{"name": "k"}', {**JSON, "authorization": "Bearer writer", "x-slow-down": "1"}),
    (b'{"name": ', {**JSON, "authorization": "Bearer writer"}),
    (b"", {**JSON, "authorization": "Bearer writer"}),
    (b'{"name": "kettle"}', {"authorization": "Bearer writer"}),
    (b'{"name": "kettle"}', {"content-type": "text/plain", "authorization": "Bearer writer"}),
    (b'{"name": "kettle", "extra": 1}', {**JSON, "authorization": "Bearer writer"}),
    (
        b'{"name": "kettle"}',
        {"content-type": "application/json; charset=utf-8", "authorization": "Bearer writer"},
    ),
]


@pytest.mark.parametrize(("body", "headers"), REQUESTS)
async def test_every_answer_is_the_one_fastapi_gives(body: bytes, headers: dict[str, str]) -> None:
    fast, standard = _app(), _app()
    standard.dependency_overrides[_unused] = _unused  # any override: FastAPI's handler only
    ours, theirs = await _send(fast, body, headers), await _send(standard, body, headers)
    assert (ours.status_code, ours.headers, ours.content) == (
        theirs.status_code,
        theirs.headers,
        theirs.content,
    )


def _unused() -> None:
    """A dependency no route uses, overridden to send requests through FastAPI's handler."""


async def test_the_common_request_skips_the_solver(monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app()
    with solver_calls(monkeypatch) as calls:
        answer = await _send(app, b'{"name": "kettle"}', {**JSON, "authorization": "Bearer writer"})
    assert answer.status_code == 201
    assert answer.json() == {
        "caller": "writer",
        "name": "kettle",
        "size": 1,
        "tag": None,
        "path": "/things",
    }
    assert calls == []


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        (b'{"name": "kettle"}', {**JSON, "authorization": "Bearer writer", "X-Tag": "t"}),
        (b'{"name": "k"}', {**JSON, "authorization": "Bearer writer"}),
        (b'{"name": "kettle"}', {"content-type": "text/plain", "authorization": "Bearer w"}),
    ],
)
async def test_anything_else_goes_through_fastapi(
    monkeypatch: pytest.MonkeyPatch, body: bytes, headers: dict[str, str]
) -> None:
    with solver_calls(monkeypatch) as calls:
        await _send(_app(), body, headers)
    assert calls == [1]


async def _plain_caller(principal: Annotated[Principal, require("things:write")]) -> str:
    return principal.client_id


async def _with_query(
    data: Thing, caller: Annotated[str, Depends(_guard)], page: int = 1
) -> JSONResponse:
    return JSONResponse({})


async def _with_required_header(
    data: Thing, caller: Annotated[str, Depends(_guard)], tag: Annotated[str, Header()]
) -> JSONResponse:
    return JSONResponse({})


async def _not_a_guard(data: Thing, caller: Annotated[str, Depends(_plain_caller)]) -> JSONResponse:
    return JSONResponse({})


async def _two_callers(
    data: Thing, a: Annotated[str, Depends(_guard)], b: Annotated[str, Depends(_guard)]
) -> JSONResponse:
    return JSONResponse({})


async def _no_body(caller: Annotated[str, Depends(_guard)]) -> JSONResponse:
    return JSONResponse({})


@pytest.mark.parametrize(
    "endpoint", [_with_query, _with_required_header, _not_a_guard, _two_callers, _no_body]
)
def test_a_shape_it_would_not_answer_as_fastapi_does_is_refused(endpoint: Any) -> None:
    with pytest.raises(TypeError, match="FastRoute"):
        FastRoute("/x", endpoint, methods=["POST"])


def test_intakes_registration_is_a_fast_route() -> None:
    app = intake_app.create_app(IntakeSettings.model_validate({"SELECTOR_HMAC_KEY": "k" * 32}))
    (route,) = (
        r
        for r in fastapi_routing.iter_route_contexts(app.routes)
        if r.path == "/v1/cases" and "POST" in (r.methods or ())
    )
    assert isinstance(route.original_route, FastRoute)


BODY = (
    '"platform":"telegram","legal_basis":"Art. 18","offence_categories":["fraud"],'
    '"selectors":[{"kind":"account_handle","value":"@x"}]'
)


@pytest.mark.parametrize(
    "body",
    [
        '{"reference":"R-1",%s}',
        '{"reference":"R-1","reference":"R-2",%s}',
        '{"reference":" R-1 ",%s,"emergency":"yes"}',
        '{"reference":"R-1",%s,"emergency":1.0}',
        '{"reference":"R-1",%s,"emergency":NaN}',
        '{"reference":"R-1",%s,"lead_case_id":"0b6f5c1e1c6d4d0e9a0b1b2c3d4e5f60"}',
        '{"reference":"R-1",%s,"legal_basis":"a\\ud800b"}',
        '{"reference":"R-1",%s,"legal_basis":"x\\udc00"}',
        '{"reference":"R-1",%s,"legal_basis":"\\ud83d\\ude00 \\u00e9t\\u00e9"}',
        '{"reference":"R-1",%s,"legal_basis":"a\\u0000b"}',
        '\ufeff{"reference":"R-1",%s}',
        '{"reference":"R-1",%s}\n',
        '{"reference":"R-1",%s}x',
        '{"reference":1e400,%s}',
        '{"reference":"R-1",%s,"release_policy":"members","extra":1}',
    ],
)
def test_a_body_parsed_from_bytes_is_the_body_json_loads_gives(body: str) -> None:
    """The fast path validates with `model_validate_json`, FastAPI with `json.loads` and
    `model_validate`: whatever the first accepts, the second accepts as the same value."""
    raw = (body % BODY).encode("utf-8", "surrogatepass")
    try:
        fast = CaseCreate.model_validate_json(raw)
    except ValidationError:
        return  # refused: FastAPI's handler answers
    assert CaseCreate.model_validate(json.loads(raw)) == fast
