"""`FastRoute`: a JSON POST answered without FastAPI's generic dependency solver.

For every request FastAPI walks a route's dependency tree generically: cache keys, scopes,
exit stacks, a parse of the content type, `json.loads` and then validation of the result.
For intake's registration that machinery cost about 0.14 ms of CPU of the 1 ms a
registration took (`bench.intake_cpu`), more than building the registration's rows. A
`FastRoute` keeps the route as declared (its OpenAPI document, FastAPI's own handler) and
answers the common request itself, with the very callables the declaration names, in
FastAPI's order:

1. the body, validated by pydantic from its bytes (`model_validate_json`);
2. the bearer token, then `authenticate` with the scopes the caller chain declares;
3. the caller's guard (an async generator dependency taking the request and the principal)
   around 4. the endpoint, every optional header absent.

Everything else goes to FastAPI's handler, so every other answer is FastAPI's own: a body
that does not validate (FastAPI checks the token and the guard first, then words the 422), a
body not declared as JSON, an optional header that is present (an Idempotency-Key), dependency
overrides (tests), FastAPI's own telemetry. A body pydantic accepts from bytes, `json.loads`
and validation accept too, with the same value (tests/unit/test_fast_route.py).

The declared shape is checked when the route is built: the request, one body model, optional
headers, one caller chain guard -> `authenticate` -> the bearer token, nothing else. A route
declared otherwise fails at start-up rather than be answered differently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from inspect import isasyncgenfunction
from typing import Any

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, _effective_route_context_var
from fastapi.security import SecurityScopes
from fastapi.telemetry import get_telemetry_data
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from shared.auth.deps import authenticate, bearer_token
from shared.auth.principal import Principal

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


@dataclass(frozen=True)
class _Plan:
    """What the declaration says a request needs, read once from FastAPI's dependant."""

    endpoint: Callable[..., Awaitable[Any]]
    model: type[BaseModel]
    body: str  # the endpoint's parameter names
    request: str | None
    caller: str
    optional_headers: dict[str, frozenset[str]]  # parameter -> header names, lower case
    scopes: SecurityScopes
    guard: Callable[[Request, Principal], AbstractAsyncContextManager[Any]]


class FastRoute(APIRoute):
    """An `APIRoute` whose common request skips the generic solver (see the module)."""

    def get_route_handler(self) -> Handler:
        standard = super().get_route_handler()
        # The dependant FastAPI's own handler uses: the route's, or its inclusion's (with the
        # including routers' dependencies and the app's overrides), as APIRoute reads it.
        context = _effective_route_context_var.get()
        route: Any = context if context is not None and context.original_route is self else self
        plan = _plan(route.dependant, embedded=route._embed_body_fields)
        overrides = route.dependency_overrides_provider

        async def handler(request: Request) -> Response:
            if not _common(request, plan) or getattr(overrides, "dependency_overrides", None):
                return await standard(request)
            try:
                data = plan.model.model_validate_json(await request.body())
            except Exception:  # refused or unreadable: FastAPI's handler words the answer
                return await standard(request)
            principal = await authenticate(plan.scopes, request, await bearer_token(request))
            async with plan.guard(request, principal) as caller:
                values: dict[str, Any] = {plan.body: data, plan.caller: caller}
                if plan.request is not None:
                    values[plan.request] = request
                answer = await plan.endpoint(**values, **dict.fromkeys(plan.optional_headers))
            if not isinstance(answer, Response):
                raise TypeError(f"{self.path}: a FastRoute endpoint returns a Response")
            return answer

        return handler


def _common(request: Request, plan: _Plan) -> bool:
    """A declared JSON body, no optional header, and no FastAPI telemetry to feed."""
    headers = request.headers
    media_type = headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" or get_telemetry_data() is not None:
        return False
    return not any(name in headers for names in plan.optional_headers.values() for name in names)


def _plan(dependant: Dependant, *, embedded: bool) -> _Plan:
    """Read the route's shape, refusing any the fast path would not answer as FastAPI does."""
    path = dependant.path or "a route"
    body = _one(dependant.body_params, f"{path}: a FastRoute takes one body model")
    model = body.field_info.annotation
    plain = not embedded and not body.field_info.metadata
    if not (plain and isinstance(model, type) and issubclass(model, BaseModel)):
        raise TypeError(f"{path}: a FastRoute's body is one plain pydantic model")
    optional_headers = {}
    for header in dependant.header_params:
        if header.field_info.is_required() or header.field_info.default is not None:
            raise TypeError(f"{path}: a FastRoute's headers are optional (default None)")
        spellings = {header.alias, header.name, header.name.replace("_", "-")}
        optional_headers[header.name] = frozenset(name.lower() for name in spellings)
    guard = _one(dependant.dependencies, f"{path}: a FastRoute has one caller dependency")
    auth = _one(guard.dependencies, f"{path}: a FastRoute's caller depends on its principal")
    token = _one(auth.dependencies, f"{path}: a FastRoute's principal needs the bearer token")
    if not isasyncgenfunction(guard.call) or guard.name is None or auth.name is None:
        raise TypeError(f"{path}: a FastRoute's caller is an async generator dependency")
    if auth.call is not authenticate or token.call is not bearer_token:
        raise TypeError(f"{path}: a FastRoute's principal comes from `authenticate`")
    _refuse_extras(path, dependant)
    for part in (guard, auth, token):
        _refuse_extras(path, part)
        if part.body_params or part.header_params:
            raise TypeError(f"{path}: a FastRoute's dependencies read no body or header")
    if guard.security_scopes_param_name or guard.http_connection_param_name:
        raise TypeError(f"{path}: a FastRoute's caller takes the request and principal only")
    assert dependant.call is not None
    assert guard.call is not None
    scopes = [*(auth.parent_oauth_scopes or ()), *(auth.own_oauth_scopes or ())]
    return _Plan(
        endpoint=dependant.call,
        model=model,
        body=body.name,
        request=dependant.request_param_name,
        caller=guard.name,
        optional_headers=optional_headers,
        scopes=SecurityScopes(scopes=list(dict.fromkeys(scopes))),
        guard=_guard(guard.call, request=guard.request_param_name, principal=auth.name),
    )


def _one(items: list[Any], refusal: str) -> Any:
    if len(items) != 1:
        raise TypeError(refusal)
    return items[0]


def _refuse_extras(path: str, dependant: Dependant) -> None:
    """No parameter the fast path does not fill: path, query, cookies, response, tasks."""
    extras = (
        dependant.path_params,
        dependant.query_params,
        dependant.cookie_params,
        dependant.websocket_param_name,
        dependant.response_param_name,
        dependant.background_tasks_param_name,
    )
    if any(extras):
        raise TypeError(f"{path}: a FastRoute fills no path, query, cookie or response")


def _guard(
    call: Callable[..., AsyncIterator[Any]], *, request: str | None, principal: str
) -> Callable[[Request, Principal], AbstractAsyncContextManager[Any]]:
    """The guard dependency as a context manager of (request, principal)."""
    manager = asynccontextmanager(call)

    def enter(req: Request, who: Principal) -> AbstractAsyncContextManager[Any]:
        return manager(**({request: req} if request else {}), **{principal: who})

    return enter
