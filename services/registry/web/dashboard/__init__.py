"""The coordinator dashboard, served by the registry: server-rendered pages, one small script.

A subpackage because it brings its own sign-in, session store, templates and assets, none of
which the registry's API needs. `install` adds it to the registry app; the lifespan's HTTP
client and token validator are shared with the API.
"""

from __future__ import annotations

from urllib.parse import quote

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from services.registry.settings import RegistrySettings
from services.registry.state import RegistryState
from services.registry.web.dashboard import auth, pages, statistics_page
from services.registry.web.dashboard.oauth import DashboardOAuth
from services.registry.web.dashboard.render import STATIC, page
from services.registry.web.dashboard.session import Sessions


def install(app: FastAPI) -> None:
    """Routes, assets and the sign-in redirect; `start` wires what needs the lifespan."""
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(statistics_page.router)
    app.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard_static")

    async def sign_in_first(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, auth.SignInRequired)
        return RedirectResponse(f"/dashboard/login?next={quote(exc.next_path)}", status_code=303)

    async def not_permitted(request: Request, _exc: Exception) -> Response:
        context = {
            "title": "Not permitted",
            "message": "Your account may not view fan-out (it lacks fanout:read).",
            "alert": True,
        }
        return page(request, "message.html", context, status_code=403)

    app.add_exception_handler(auth.SignInRequired, sign_in_first)
    app.add_exception_handler(auth.NotPermitted, not_permitted)


def start(state: RegistryState, settings: RegistrySettings, *, http: httpx.AsyncClient) -> None:
    """Per-process state: the session store and the OAuth client (sharing the API's `http`)."""
    state.dashboard_sessions = Sessions()
    state.dashboard_oauth = DashboardOAuth(
        issuer=settings.oauth_issuer, client_id=settings.dashboard_client_id, http=http
    )
