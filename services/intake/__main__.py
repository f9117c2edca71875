"""`python -m services.intake`: build settings, configure logging, serve.

With `INTAKE_WORKERS` above 1, uvicorn's supervisor binds the port and spawns that many worker
processes; uvicorn needs an import string to start each in a fresh interpreter, so every
worker calls `services.intake.app:from_environment` and builds its own settings, logging,
database pool and token validator.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from services.intake.app import FACTORY, create_app
from services.intake.settings import IntakeSettings
from shared import heap, logs, tracing, web


def main() -> None:
    settings = IntakeSettings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, service="intake")
    traced = tracing.configure("intake", endpoint=settings.otel_exporter_otlp_endpoint)
    app: FastAPI | str = create_app(settings) if settings.workers == 1 else FACTORY
    heap.freeze_startup_objects()  # each worker process does too, in `from_environment`
    try:
        uvicorn.run(
            app,
            factory=settings.workers > 1,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_config=None,
            **web.proxy_options(settings.forwarded_allow_ips),
            timeout_graceful_shutdown=10,
        )
    finally:
        if traced is not None:
            traced.shutdown()


if __name__ == "__main__":
    main()
