"""The intake baseline: a bare FastAPI JSON endpoint, served exactly as intake is served.

`python -m bench.bare PORT` runs uvicorn with intake's settings (`log_config=None`, the same
graceful-shutdown budget, uvicorn's automatic choice of event loop and HTTP parser), so the
ratio measures what caseshare adds per request: authentication, validation, the transaction,
the audit entry and the outbox row.

`python -m bench.bare PORT DSN` is a context figure, not the target's baseline: the same
endpoint also commits the body in one INSERT through a raw asyncpg pool (intake's pool size)
to a scratch database beside caseshare's on the same PostgreSQL. It shows how much of the gap
is PostgreSQL's commit on this machine, before anything caseshare does.

Both run with as many uvicorn workers as intake (`INTAKE_WORKERS`), so that a ratio never
compares several processes with one.

Either also answers `GET /v1/platform/requests` with the bytes of the file `BENCH_BARE_PAGE`
names (a real inbox page the paths phase fetched), read once at start: the baseline of a read
is the same server sending the same bytes, with no token, no query and no model to render.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

SCRATCH_DATABASE = "caseshare_bench"
EMPTY_PAGE = b'{"items":[],"next_cursor":null}'
POOL_SIZE = 20  # intake's default pool, no overflow


async def _scratch_pool(dsn: str) -> asyncpg.Pool:
    """A pool on a scratch database (created once), so caseshare's schema stays untouched."""
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f"CREATE DATABASE {SCRATCH_DATABASE}")
    except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
        pass  # made by another worker, or by an earlier run
    finally:
        await admin.close()
    scratch = dsn.rsplit("/", 1)[0] + "/" + SCRATCH_DATABASE
    pool = await asyncpg.create_pool(scratch, min_size=POOL_SIZE, max_size=POOL_SIZE)
    with contextlib.suppress(asyncpg.UniqueViolationError):  # two workers raced to create it
        await pool.execute(
            "CREATE TABLE IF NOT EXISTS commits (id uuid PRIMARY KEY, body jsonb NOT NULL)"
        )
    return pool


def create_app(dsn: str | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await _scratch_pool(dsn) if dsn else None
        try:
            yield
        finally:
            if app.state.pool is not None:
                await app.state.pool.close()

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.post("/v1/cases", status_code=201)
    async def register(body: dict[str, Any], request: Request) -> JSONResponse:
        ident = uuid.uuid4()
        pool: asyncpg.Pool | None = request.app.state.pool
        if pool is not None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    "INSERT INTO commits (id, body) VALUES ($1, $2::jsonb)",
                    ident,
                    orjson.dumps(body).decode(),
                )
        return JSONResponse({"id": str(ident), **body}, status_code=201)

    page_file = os.environ.get("BENCH_BARE_PAGE")
    page = Path(page_file).read_bytes() if page_file else EMPTY_PAGE

    @app.get("/v1/platform/requests")
    async def inbox() -> Response:
        return Response(page, media_type="application/json")

    return app


def from_environment() -> FastAPI:
    """The app of one worker process when there are several."""
    return create_app(os.environ.get("BENCH_BARE_DSN") or None)


def main() -> None:
    dsn = sys.argv[2] if len(sys.argv) > 2 else None
    workers = int(os.environ.get("INTAKE_WORKERS", "1"))
    if dsn and workers > 1:
        os.environ["BENCH_BARE_DSN"] = dsn
    uvicorn.run(
        create_app(dsn) if workers == 1 else "bench.bare:from_environment",
        factory=workers > 1,
        workers=workers,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
