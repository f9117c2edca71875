"""`python -m services.issuer`: run the embedded authorization server from the environment."""

from __future__ import annotations

import logging

import uvicorn

from services.issuer.app import create_app
from services.issuer.settings import IssuerSettings
from shared import heap, logs, web


def main() -> None:
    """Build settings, configure logging and serve until interrupted."""
    settings = IssuerSettings()
    logs.configure(level=settings.log_level, fmt=settings.log_format, service="issuer")
    # authlib's debug records include issued tokens; never let them through.
    logging.getLogger("authlib").setLevel(max(logging.INFO, logging.getLogger().level))
    app = create_app(settings)
    heap.freeze_startup_objects()
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        **web.proxy_options(settings.forwarded_allow_ips),
    )


if __name__ == "__main__":
    main()
