"""The dashboard's pictures in process: the shaded map, the statistics page, the vendored assets.

Browser behaviour (live spokes, charts drawn, axe-core) is in tests/e2e/test_dashboard.py.
"""

from __future__ import annotations

import json
import re

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.registry.context import Context
from tests.integration.test_coordinator import (
    DE,
    FR,
    assert_metadata_only,
    build_world,
    new_platform,
    register,
)
from tests.integration.test_dashboard import Dashboard, browser, dashboard, sign_in

pytestmark = pytest.mark.integration
__all__ = ["browser", "dashboard"]  # fixtures shared with test_dashboard


def country(page: str, code: str) -> str:
    """The SVG element (link or shape) that draws `code` on the map."""
    found = re.search(rf'<(a|path) class="country[^"]*"[^>]*data-code="{code}"[^>]*>', page)
    assert found, code
    return found.group(0)


async def test_the_map_shades_countries_for_the_chosen_platform_and_links_their_cases(
    browser: httpx.AsyncClient,
    dashboard: Dashboard,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
) -> None:
    slug = await new_platform(sessionmaker)
    for actor in (FR, FR, FR, FR, DE):
        await register(sessionmaker, ctx, actor, platform=slug)
    await sign_in(browser, dashboard.issuer)
    page = (await browser.get("/dashboard", params={"platform": slug, "status": "open"})).text
    fr, de, it = country(page, "FR"), country(page, "DE"), country(page, "IT")
    assert 'data-cases="4" data-level="4"' in fr
    assert 'data-cases="1" data-level="1"' in de
    assert f'/dashboard/cases?opened_by=FR&amp;platform={slug}&amp;status=open"' in fr
    assert 'aria-label="France (FR): 4 cases"' in fr
    assert it.startswith("<path")
    assert 'data-cases="0"' in it
    assert {"KR", "JP", "US"} <= set(re.findall(r'data-code="([A-Z]{2})"', page))  # the insets
    # The table below the map shows the same choice, only this platform's column.
    assert re.search(rf'data-jurisdiction="FR" data-platform="{slug}">\s*<a[^>]*>4<', page)
    assert 'data-platform="telegram"' not in page
    listing = await browser.get("/dashboard/cases", params={"opened_by": "FR", "platform": slug})
    assert len(re.findall(r'href="[^"]*/dashboard/cases/[0-9a-f-]{36}"', listing.text)) == 4


async def test_the_statistics_page_embeds_the_endpoint_figures_and_no_disclosed_value(
    browser: httpx.AsyncClient,
    dashboard: Dashboard,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
) -> None:
    world = await build_world(sessionmaker, ctx)
    await sign_in(browser, dashboard.issuer)
    page = await browser.get("/dashboard/statistics", params={"days": 7})
    assert page.status_code == 200
    block = re.search(
        r'<script type="application/json" id="statistics-data">(.*?)</script>', page.text
    )
    assert block
    figures = json.loads(block.group(1))
    assert figures["days"] == 7
    assert sum(d["responses"] for d in figures["per_day"]) >= 2
    assert set(re.findall(r'data-chart="([a-z-]+)"', page.text)) == {
        "per-day",
        "latency",
        "states",
        "deadlines",
    }
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert_metadata_only(page.text, world.forbidden)
    fanout = await browser.get(f"/dashboard/responses/{world.routed}")
    assert "data-picture" in fanout.text
    assert 'data-jurisdiction="IT" data-reason="case_not_open"' in fanout.text


async def test_vendored_assets_are_served_with_their_licences(
    browser: httpx.AsyncClient,
) -> None:
    for path in (
        "vendor/echarts/echarts.common.min.js",
        "vendor/echarts/LICENSE",
        "vendor/world-atlas/LICENSE",
        "fanout_picture.js",
        "statistics.js",
    ):
        answer = await browser.get(f"/dashboard/static/{path}")
        assert answer.status_code == 200, path
    for script in ("fanout_picture.js", "statistics.js"):
        assert "innerHTML" not in (await browser.get(f"/dashboard/static/{script}")).text
