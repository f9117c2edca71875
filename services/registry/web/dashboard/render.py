"""Rendering dashboard pages: the Jinja2 environment, its filters, and the pages' own CSP.

The API's policy (`default-src 'none'`) would block the dashboard's stylesheet and script; these
pages allow exactly their own origin's styles, scripts and event stream, and nothing inline.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_HEADERS = {"Content-Security-Policy": CONTENT_SECURITY_POLICY}
STATIC = Path(__file__).parent / "static"

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def _when(value: datetime | None) -> str:
    """Times read the same everywhere on the desk: UTC, to the second."""
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


templates.env.filters["when"] = _when
templates.env.filters["iso"] = _iso


def page(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> Response:
    """A dashboard page with the dashboard's headers; `context` adds to what every page gets."""
    csrf = getattr(request.state, "dashboard_csrf", None)
    return templates.TemplateResponse(
        request,
        name,
        {"csrf": csrf, **context},
        status_code=status_code,
        headers=PAGE_HEADERS,
    )
