"""`python -m services.router`: build settings, configure logging, run until SIGTERM."""

from __future__ import annotations

import uvicorn

from services.router.app import create_app
from services.router.settings import RouterSettings
from shared import heap, logs, tracing, web


def main() -> None:
    settings = RouterSettings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, service="router")
    traced = tracing.configure("router", endpoint=settings.otel_exporter_otlp_endpoint)
    app = create_app(settings)
    heap.freeze_startup_objects()
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_config=None,
            **web.proxy_options(settings.forwarded_allow_ips),
            timeout_graceful_shutdown=2,
        )
    finally:
        if traced is not None:
            traced.shutdown()


if __name__ == "__main__":
    main()
