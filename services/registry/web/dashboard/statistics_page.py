"""The dashboard's statistics page: the statistics endpoint's figures, drawn as charts.

The page embeds the same `Statistics` model the API's `GET /v1/registry/statistics` returns, as
a JSON data block (not a script, so the CSP stays `script-src 'self'`), because the browser
holds no bearer token to fetch it with; `statistics.js` draws it with the vendored ECharts.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from services.registry.oversight import statistics as stats
from services.registry.web.dashboard.auth import CoordinatorPage
from services.registry.web.dashboard.render import page
from services.registry.web.deps import SessionmakerDep
from shared.db import transaction

router = APIRouter(prefix="/dashboard", include_in_schema=False)
WINDOWS = (7, 30, 90)


@router.get("/statistics", name="dashboard_statistics")
async def statistics(
    request: Request, _who: CoordinatorPage, sm: SessionmakerDep, days: int = 30
) -> Response:
    """Charts over the last `days` days (7, 30 or 90): flow, acknowledgement times, states."""
    days = days if days in WINDOWS else 30
    async with transaction(sm) as session:
        figures = await stats.statistics(session, days=days)
    context = {
        "nav": "statistics",
        "figures": figures.model_dump(mode="json"),
        "days": days,
        "windows": WINDOWS,
    }
    return page(request, "statistics.html", context)
