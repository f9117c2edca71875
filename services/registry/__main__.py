"""`python -m services.registry`: build settings, configure logging, serve the registry API."""

from __future__ import annotations

import uvicorn

from services.registry.app import create_app
from services.registry.settings import RegistrySettings
from shared import heap, logs, tracing, web


def main() -> None:
    settings = RegistrySettings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, service="registry")
    traced = tracing.configure("registry", endpoint=settings.otel_exporter_otlp_endpoint)
    app = create_app(settings)
    heap.freeze_startup_objects()
    try:
        uvicorn.run(
            app,
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
