"""Signing out of the dashboard signs out of the issuer too (issue 15, finding 6).

The real issuer and the real registry run in process over the suite's PostgreSQL; a "browser"
made of two cookie-keeping clients, one per origin, follows every redirect by hand, so the
issuer's sign-in cookie behaves as it would in a real browser.
"""

from __future__ import annotations

import html
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from services.issuer import clients, users
from services.issuer.app import create_app as create_issuer
from services.registry.app import create_app as create_registry
from shared.state import ServiceState, state_of
from tests.integration.test_issuer import ISSUER, asgi_client, issuer_settings
from tests.registry_api import settings_for

pytestmark = pytest.mark.integration

REGISTRY = "http://registry.test"


@dataclass
class Browser:
    registry: httpx.AsyncClient
    issuer: httpx.AsyncClient

    def _client(self, url: str) -> httpx.AsyncClient:
        return self.issuer if url.startswith(ISSUER) else self.registry

    async def get(self, url: str) -> httpx.Response:
        return await self._client(url).get(url)

    async def open_dashboard(self) -> httpx.Response:
        """GET /dashboard, following redirects until a page: the dashboard or a sign-in form."""
        answer = await self.registry.get("/dashboard")
        while answer.status_code in {302, 303}:
            answer = await self.get(_absolute(answer.headers["location"]))
        return answer


def _absolute(location: str) -> str:
    return location if "://" in location else REGISTRY + location


@dataclass
class Person:
    email: str
    password: str


@pytest.fixture
async def apps(database_url: str, engine: AsyncEngine) -> AsyncIterator[tuple[FastAPI, FastAPI]]:
    issuer = create_issuer(issuer_settings(database_url))
    async with issuer.router.lifespan_context(issuer):
        settings = settings_for(database_url, "tlogout" + uuid.uuid4().hex[:8], OAUTH_ISSUER=ISSUER)
        registry = create_registry(settings, http=asgi_client(issuer))
        async with registry.router.lifespan_context(registry):
            yield issuer, registry


@pytest.fixture
async def person(apps: tuple[FastAPI, FastAPI]) -> Person:
    issuer, _ = apps
    someone = Person(f"desk-{uuid.uuid4().hex[:8]}@caseshare.test", secrets.token_urlsafe(12))
    async with state_of(issuer, ServiceState).sessionmaker.begin() as session:
        await clients.ensure_dashboard_client(
            session, redirect_uris=[f"{REGISTRY}/dashboard/callback"]
        )
        await users.create_user(
            session, email=someone.email, password=someone.password, scopes=("fanout:read",)
        )
    return someone


@pytest.fixture
async def browser(apps: tuple[FastAPI, FastAPI]) -> AsyncIterator[Browser]:
    issuer, registry = apps
    async with (
        httpx.AsyncClient(transport=httpx.ASGITransport(registry), base_url=REGISTRY) as reg,
        asgi_client(issuer) as iss,
    ):
        yield Browser(registry=reg, issuer=iss)


def is_sign_in_form(page: httpx.Response) -> bool:
    return page.status_code == 200 and 'name="password"' in page.text


async def sign_in(browser: Browser, person: Person) -> httpx.Response:
    form_page = await browser.open_dashboard()
    assert is_sign_in_form(form_page), form_page.text
    fields = dict(
        re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form_page.text)
    )
    fields = {k: html.unescape(v) for k, v in fields.items()}
    answer = await browser.issuer.post(
        "/authorize", data={**fields, "email": person.email, "password": person.password}
    )
    assert answer.status_code == 302, answer.text
    back = await browser.get(answer.headers["location"])
    assert back.status_code == 303
    dashboard = await browser.registry.get(back.headers["location"])
    assert dashboard.status_code == 200
    return dashboard


async def sign_out(browser: Browser, dashboard: httpx.Response) -> None:
    csrf = re.search(r'name="csrf" value="([^"]+)"', dashboard.text)
    assert csrf is not None
    leaving = await browser.registry.post("/dashboard/logout", data={"csrf": csrf.group(1)})
    assert leaving.status_code == 200
    refresh = re.search(r'http-equiv="refresh" content="0;url=([^"]+)"', leaving.text)
    assert refresh is not None
    issuer_logout = html.unescape(refresh.group(1))
    assert issuer_logout.startswith(f"{ISSUER}/logout?")
    ended = await browser.get(issuer_logout)
    assert ended.status_code == 303
    assert ended.headers["location"] == f"{REGISTRY}/dashboard/signed-out"
    assert (await browser.get(ended.headers["location"])).status_code == 200


async def test_after_sign_out_the_dashboard_asks_for_the_password_again(
    browser: Browser, person: Person
) -> None:
    dashboard = await sign_in(browser, person)
    again = await browser.open_dashboard()  # still signed in: no password asked
    assert again.status_code == 200
    assert not is_sign_in_form(again)
    await sign_out(browser, dashboard)
    assert is_sign_in_form(await browser.open_dashboard())


async def test_a_copy_of_the_issuer_cookie_is_dead_after_sign_out(
    browser: Browser, person: Person, apps: tuple[FastAPI, FastAPI]
) -> None:
    dashboard = await sign_in(browser, person)
    copied = dict(browser.issuer.cookies)
    await sign_out(browser, dashboard)
    async with asgi_client(apps[0]) as thief:
        thief.cookies.update(copied)
        params = parse_qs(
            urlsplit((await browser.registry.get("/dashboard/login")).headers["location"]).query
        )
        page = await thief.get("/authorize", params={k: v[0] for k, v in params.items()})
    assert is_sign_in_form(page)


async def test_the_issuer_publishes_its_end_session_endpoint(
    browser: Browser,
) -> None:
    metadata = (await browser.issuer.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["end_session_endpoint"] == f"{ISSUER}/logout"


@pytest.mark.parametrize(
    "query",
    [
        {"client_id": "dashboard", "post_logout_redirect_uri": "https://evil.test/x"},
        {"client_id": "admin", "post_logout_redirect_uri": f"{REGISTRY}/dashboard/signed-out"},
        {"post_logout_redirect_uri": f"{REGISTRY}/dashboard/signed-out"},
    ],
)
async def test_logout_never_redirects_to_an_unregistered_place(
    browser: Browser, person: Person, query: dict[str, str]
) -> None:
    answer = await browser.issuer.get("/logout", params=query)
    assert answer.status_code == 200
    assert "location" not in answer.headers
    assert "signed out" in answer.text
