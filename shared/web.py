"""What every HTTP service shares: problem+json errors, security headers, a body-size cap,
request ids for the logs, and the liveness/readiness endpoints."""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import request_id_var
from shared.problems import install_problem_handlers, problem_response

logger = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    "Cross-Origin-Resource-Policy": "same-origin",
}
_SECURITY_RAW = [
    (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in SECURITY_HEADERS.items()
]
Check = Callable[[], Awaitable[None]]


class BodySizeLimit:
    """Refuse bodies over `limit` bytes with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, *, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        seen, tripped, started = 0, False, False

        async def limited() -> Message:
            nonlocal seen, tripped
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                tripped = True
                raise _TooLarge
            return message

        async def answer(message: Message) -> None:
            nonlocal started
            # A framework may catch _TooLarge and answer for it (FastAPI words any error
            # reading a body as a 400): once the limit tripped, that answer is replaced by ours.
            if tripped and not started:
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited, answer)
        if tripped and not started:
            await self._refuse(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem_response(
            413,
            "Payload too large",
            f"request bodies are limited to {self.limit} bytes",
            type_slug="payload-too-large",
            instance=scope.get("path"),
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


class RequestContext:
    """Request ids for the logs, security headers on every answer, one log line per request.

    A plain ASGI middleware rather than `@app.middleware("http")`: Starlette's
    BaseHTTPMiddleware runs the app in a task group with memory streams, a large share of
    a small request's cost. The line is logged when the response starts, as before.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = (Headers(scope=scope).get("x-request-id") or uuid.uuid4().hex)[:64]
        token = request_id_var.set(rid)
        started = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Request-Id"] = rid
                # as setdefault for each, in one pass over the answer's headers
                present = {name for name, _ in headers.raw}
                headers.raw.extend(h for h in _SECURITY_RAW if h[0] not in present)
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": message["status"],
                        "request_id": rid,
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                    },
                )
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            request_id_var.reset(token)


def install_common(app: FastAPI, *, max_body_bytes: int) -> None:
    """Errors, headers, request ids and the size cap, in one call per app."""
    install_problem_handlers(app)

    app.add_middleware(RequestContext)
    app.add_middleware(BodySizeLimit, limit=max_body_bytes)


def proxy_options(forwarded_allow_ips: str) -> dict[str, Any]:
    """uvicorn's proxy settings: believe forwarded headers from the listed proxies only.

    Passed to every uvicorn launch, because uvicorn's own default trusts 127.0.0.1, and on a
    shared host anyone can connect from there and claim any address in X-Forwarded-For.
    """
    trusted = [part.strip() for part in forwarded_allow_ips.split(",") if part.strip()]
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted}


def health_router(checks: Callable[[], dict[str, Check]]) -> APIRouter:
    """`/healthz` says the process is alive; `/readyz` runs each dependency check."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/readyz", response_model=None)
    async def readyz() -> Response | dict[str, object]:
        results: dict[str, str] = {}
        for name, check in checks().items():
            try:
                await check()
                results[name] = "ok"
            except Exception as exc:  # readiness reports any failure, whatever its type
                results[name] = f"unavailable: {exc.__class__.__name__}"
        if all(v == "ok" for v in results.values()):
            return {"status": "ready", "checks": results}
        return problem_response(
            503, "Not ready", "a dependency is unavailable", type_slug="not-ready", checks=results
        )

    return router


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson: the same compact UTF-8 bytes as Starlette's, a few times faster.

    FastAPI's own `ORJSONResponse` is deprecated: it renders declared response models to bytes
    through pydantic, a path that any `default_response_class` switches off, so this class is
    used only where a route builds its answer as a dict (`created_response`).
    """

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def created_response(
    status: int, body: dict[str, Any], *, replayed: bool, location: str
) -> JSONResponse:
    """The answer to a POST that may have been replayed under its Idempotency-Key."""
    headers = {"Location": location}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return FastJSONResponse(body, status_code=status, headers=headers)
