"""The dashboard in process: sign-in through a fake issuer, pages over committed data, the stream.

The issuer is an `httpx.MockTransport` that publishes RFC 8414 metadata, signs access tokens
and redeems codes only with the right PKCE verifier, so the dashboard's OAuth client and the
real token validation both run. Browser behaviour is covered by tests/e2e/test_dashboard.py.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from services.registry.app import create_app
from services.registry.cases import coordination
from services.registry.cases.rules import CoordinationDecision
from services.registry.context import Actor, Context
from services.registry.requests import service as requests
from services.registry.requests.rules import RequestType
from services.registry.web.dashboard.render import CONTENT_SECURITY_POLICY
from services.registry.web.stream import REAUTHENTICATE, Viewers
from shared.db import transaction
from tests import factories
from tests.integration.test_coordinator import (
    FR,
    assert_metadata_only,
    build_world,
    new_platform,
    register,
    submit,
)
from tests.registry_api import ISSUER, Issuer, next_events, read_events, serving, settings_for

pytestmark = pytest.mark.integration

CLIENT_ID = "dashboard"


@dataclass
class FakeIssuer(Issuer):
    """Also an authorization server: codes are registered by the test with their challenge."""

    challenges: dict[str, str] = field(default_factory=dict)
    issued: list[str] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/.well-known/oauth-authorization-server":
            return httpx.Response(
                200,
                json={
                    "issuer": ISSUER,
                    "jwks_uri": f"{ISSUER}/jwks",
                    "authorization_endpoint": f"{ISSUER}/authorize",
                    "token_endpoint": f"{ISSUER}/token",
                },
            )
        if request.url.path == "/token":
            return self.redeem({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
        return super().handle(request)

    def redeem(self, form: dict[str, str]) -> httpx.Response:
        expected = self.challenges.pop(form.get("code", ""), None)
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        actual = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
        if expected is None or expected != actual or form.get("client_id") != CLIENT_ID:
            return httpx.Response(400, json={"error": "invalid_grant"})
        token = self.token("fanout:read", client_id=CLIENT_ID)
        self.issued.append(token)
        return httpx.Response(200, json={"access_token": token, "token_type": "Bearer"})


@dataclass
class Dashboard:
    app: FastAPI
    issuer: FakeIssuer


@pytest.fixture
async def dashboard(
    database_url: str, topic_prefix: str, engine: AsyncEngine
) -> AsyncIterator[Dashboard]:
    issuer = FakeIssuer()
    app = create_app(
        settings_for(database_url, topic_prefix),
        http=httpx.AsyncClient(transport=httpx.MockTransport(issuer.handle)),
    )
    async with app.router.lifespan_context(app):
        yield Dashboard(app, issuer)


@pytest.fixture
async def browser(dashboard: Dashboard) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-out browser: keeps cookies, does not follow redirects."""
    transport = httpx.ASGITransport(dashboard.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as client:
        yield client


async def sign_in(browser: httpx.AsyncClient, issuer: FakeIssuer, next_path: str = "") -> str:
    """Follow the sign-in as a browser would; returns where the dashboard sends it back to."""
    login = await browser.get("/dashboard/login", params={"next": next_path} if next_path else {})
    assert login.status_code == 303
    query = {k: v[0] for k, v in parse_qs(urlsplit(login.headers["location"]).query).items()}
    issuer.challenges["code-1"] = query["code_challenge"]
    back = await browser.get(
        "/dashboard/callback", params={"code": "code-1", "state": query["state"]}
    )
    assert back.status_code == 303, back.text
    return back.headers["location"]


async def test_a_page_sends_a_signed_out_browser_to_the_issuer_with_pkce(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/dashboard/fanout")
    assert page.status_code == 303
    assert page.headers["location"] == "/dashboard/login?next=/dashboard/fanout"
    login = await browser.get(page.headers["location"])
    target = urlsplit(login.headers["location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/authorize"
    assert query["response_type"] == "code"
    assert query["client_id"] == CLIENT_ID
    assert query["redirect_uri"] == "http://registry.test/dashboard/callback"
    assert query["code_challenge_method"] == "S256"
    assert re.fullmatch(r"[\w-]{43}", query["code_challenge"])
    assert len(query["state"]) >= 32
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie
    assert "samesite=lax" in cookie
    assert "path=/dashboard" in cookie


async def test_sign_in_returns_to_the_page_and_keeps_the_token_server_side(
    browser: httpx.AsyncClient, dashboard: Dashboard
) -> None:
    assert await sign_in(browser, dashboard.issuer, "/dashboard/audit") == "/dashboard/audit"
    page = await browser.get("/dashboard/audit")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "unsafe-inline" not in CONTENT_SECURITY_POLICY
    assert 'id="audit-status"' in page.text
    assert re.search(r'<code id="audit-head">[0-9a-f]{64}</code>', page.text)  # to anchor
    assert re.search(r'id="open-deletions">\d+ recalled', page.text)  # open confirmations
    [token] = dashboard.issuer.issued
    assert token not in page.text
    assert all(token not in value for value in browser.cookies.values())


@pytest.mark.parametrize("next_path", ["https://evil.test/", "//evil.test/x", "/v1/registry"])
async def test_sign_in_never_returns_outside_the_dashboard(
    browser: httpx.AsyncClient, dashboard: Dashboard, next_path: str
) -> None:
    assert await sign_in(browser, dashboard.issuer, next_path) == "/dashboard"


async def test_a_callback_with_another_state_or_an_error_makes_no_session(
    browser: httpx.AsyncClient, dashboard: Dashboard
) -> None:
    await browser.get("/dashboard/login")
    dashboard.issuer.challenges["code-1"] = "anything"
    forged = await browser.get("/dashboard/callback", params={"code": "code-1", "state": "x"})
    assert forged.status_code == 400
    assert (await browser.get("/dashboard")).status_code == 303
    denied = await browser.get("/dashboard/callback", params={"error": "access_denied"})
    assert denied.status_code == 400


async def test_sign_out_needs_the_form_token_and_ends_the_session(
    browser: httpx.AsyncClient, dashboard: Dashboard
) -> None:
    await sign_in(browser, dashboard.issuer)
    page = await browser.get("/dashboard")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    stale = await browser.post("/dashboard/logout", data={"csrf": "stale"})
    assert stale.status_code == 400
    done = await browser.post("/dashboard/logout", data={"csrf": csrf.group(1)})
    assert done.status_code == 303
    assert (await browser.get("/dashboard")).status_code == 303


async def test_case_page_shows_where_the_coordination_stands(
    browser: httpx.AsyncClient,
    dashboard: Dashboard,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
) -> None:
    kr = await register(
        sessionmaker, ctx, Actor("authority-kr", "KR"), coordinating_jurisdiction="FR"
    )
    await sign_in(browser, dashboard.issuer)
    page = (await browser.get(f"/dashboard/cases/{kr.id}")).text
    assert 'data-coordination="pending"' in page
    assert "pending_coordination" in page
    async with transaction(sessionmaker) as session:
        for decision in (CoordinationDecision.ACCEPT, None):
            await coordination.answer(
                session,
                actor=FR,
                case_id=kr.id,
                decision=decision,
                reason="the desk withdrew" if decision is None else None,
                ctx=ctx,
            )
    page = (await browser.get(f"/dashboard/cases/{kr.id}")).text
    assert 'data-coordination="withdrawn"' in page
    assert "the desk withdrew" in page


async def test_case_map_links_each_count_to_its_cases(
    browser: httpx.AsyncClient,
    dashboard: Dashboard,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
) -> None:
    slug = await new_platform(sessionmaker)
    made = [await register(sessionmaker, ctx, FR, platform=slug) for _ in range(2)]
    await sign_in(browser, dashboard.issuer)
    page = (await browser.get("/dashboard")).text
    cell = f'data-jurisdiction="FR" data-platform="{slug}"'
    assert re.search(cell + r'>\s*<a href="[^"]+opened_by=FR&amp;platform=' + slug, page)
    listing = await browser.get("/dashboard/cases", params={"opened_by": "FR", "platform": slug})
    assert all(case.reference in listing.text for case in made)
    detail = await browser.get(f"/dashboard/cases/{made[0].id}")
    assert made[0].reference in detail.text
    assert (await browser.get("/dashboard/cases/not-a-case")).status_code == 404


async def test_fanout_pages_show_recipients_and_reasons_and_metadata_only(
    browser: httpx.AsyncClient,
    dashboard: Dashboard,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
) -> None:
    world = await build_world(sessionmaker, ctx)
    await sign_in(browser, dashboard.issuer)
    page = await browser.get(f"/dashboard/responses/{world.routed}")
    assert page.status_code == 200
    assert re.search(r'data-jurisdiction="FR" data-state="acknowledged"', page.text)
    assert re.search(r'data-jurisdiction="DE" data-state="published"', page.text)
    assert re.search(r'data-exclusion-id="[^"]+" data-jurisdiction="IT"', page.text)
    assert "is excluded because" in page.text
    assert_metadata_only(page.text, world.forbidden)
    assert (await browser.get("/dashboard/fanout")).status_code == 200


async def test_the_stream_needs_a_session_and_relays_committed_events(
    dashboard: Dashboard, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    async with serving(dashboard.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        assert (await http.get("/dashboard/stream")).status_code == 401
        await sign_in(http, dashboard.issuer)
        async with http.stream("GET", "/dashboard/stream") as live:
            assert live.status_code == 200
            submitted = await submit(sessionmaker, ctx)
            [event] = await read_events(live, 1)
    assert event.event == "response.received"
    assert event.data["data"]["response_id"] == str(submitted)


async def test_the_dashboards_stream_ends_when_the_sessions_token_expires(
    dashboard: Dashboard, sessionmaker: async_sessionmaker[AsyncSession], ctx: Context
) -> None:
    viewers: Viewers = dashboard.app.state.viewers
    shift = timedelta()
    viewers.clock = lambda: datetime.now(UTC) + shift
    async with serving(dashboard.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        await sign_in(http, dashboard.issuer)
        async with http.stream("GET", "/dashboard/stream") as live:
            lines = live.aiter_lines()
            await submit(sessionmaker, ctx)
            assert [e.event for e in await next_events(lines, 1)] == ["response.received"]
            shift = timedelta(minutes=6)  # the signed-in token lived five
            rest = await next_events(lines, None)
    assert [e.event for e in rest][-1:] == [REAUTHENTICATE]


async def test_the_dashboards_stream_refuses_a_resume_point_it_never_sent(
    dashboard: Dashboard,
) -> None:
    """One stream implementation: a bad Last-Event-ID is a 422 here as on the API's stream."""
    async with serving(dashboard.app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        await sign_in(http, dashboard.issuer)
        for header in ({"Last-Event-ID": "x"}, {"Last-Event-ID": "9" * 40}):
            bad = await http.get("/dashboard/stream", headers=header)
            assert bad.status_code == 422
            assert bad.headers["content-type"] == "application/problem+json"


async def test_assets_are_served_from_the_package(browser: httpx.AsyncClient) -> None:
    script = await browser.get("/dashboard/static/dashboard.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "innerHTML" not in script.text
    assert (await browser.get("/dashboard/static/dashboard.css")).status_code == 200
    assert (await browser.get("/dashboard/static/../app.py")).status_code == 404


async def test_the_deadline_board_lists_open_requests_by_time_left_overdue_in_red(
    browser: httpx.AsyncClient,
    dashboard: Dashboard,
    sessionmaker: async_sessionmaker[AsyncSession],
    ctx: Context,
) -> None:
    sel = factories.selector()
    case = await register(sessionmaker, ctx, FR, selectors=[sel])
    now = datetime.now(UTC)
    async with transaction(sessionmaker) as session:
        late = await requests.issue(
            session,
            actor=FR,
            data=factories.legal_request(case.id, sel, RequestType.EMERGENCY_PRODUCTION),
            ctx=ctx,
            now=now - timedelta(hours=9),
        )
        fresh = await requests.issue(
            session, actor=FR, data=factories.legal_request(case.id, sel), ctx=ctx, now=now
        )
    await sign_in(browser, dashboard.issuer)
    board = await browser.get("/dashboard/deadlines")
    assert board.status_code == 200
    assert re.search(f'data-request-id="{late.id}" data-overdue="true" class="overdue"', board.text)
    assert f'data-request-id="{fresh.id}" data-overdue="false"' in board.text
    assert board.text.index(str(late.id)) < board.text.index(str(fresh.id))
    assert '/dashboard/deadlines" aria-current="page"' in board.text  # in the nav
    history = await browser.get(f"/dashboard/requests/{late.id}")
    assert 'data-action="issued"' in history.text
    for body in (board.text, history.text):
        assert_metadata_only(body, [sel.value, "Parquet de Paris"])
    assert (await browser.get("/dashboard/requests/not-a-request")).status_code == 404
