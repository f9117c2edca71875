"""The intake baseline: a bare FastAPI JSON endpoint, served exactly as intake is served.

`python -m bench.bare PORT` runs uvicorn with intake's settings (`log_config=None`, the same
graceful-shutdown budget, uvicorn's automatic choice of event loop and HTTP parser), so the
ratio measures what caseshare adds per request: authentication, validation, the transaction,
the audit entry and the outbox row.
"""

from __future__ import annotations

import sys
import uuid
from typing import Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse


def create_app() -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.post("/v1/cases", status_code=201)
    async def register(body: dict[str, Any]) -> JSONResponse:
        return JSONResponse({"id": str(uuid.uuid4()), **body}, status_code=201)

    return app


def main() -> None:
    uvicorn.run(
        create_app(),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_config=None,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
