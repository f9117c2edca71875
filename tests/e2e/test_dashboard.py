"""The coordinator dashboard in headless Chromium, against the whole stack run by `caseshare up`.

Cases and responses go in through intake with real tokens, the way authorities and platforms
send them; the browser only looks. Screenshots are kept in test-artifacts/. With
CASESHARE_UPDATE_DOCS=1 the live fan-out screenshot is also written to docs/dashboard.png,
the picture the README shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Response,
    async_playwright,
    expect,
)

from caseshare.stack import supervised as stack_mod

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


@pytest.fixture(scope="module", autouse=True)
def _scan_for_what_this_module_discloses(disclosed: set[str]) -> None:
    """The stacks' logs are scanned for these once stopped (tests/e2e/conftest.py)."""
    disclosed.update(("203.0.113.7", "198.51.100.23", "+33612345678", "+4915112345678"))


ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "dashboard.png"
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google on a closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
COORDINATOR = "coordinator@caseshare.test"
LIVE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield chromium
        finally:
            await chromium.close()


class Console:
    """Errors the page logs (a CSP violation, a script failure) and requests that failed."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def __call__(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def response(self, response: Response) -> None:
        if response.status >= 400 and response.status != 401:
            self.errors.append(f"{response.status} {response.url}")


async def new_page(browser: Browser) -> tuple[Page, Console]:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    console = Console()
    page.on("console", console)
    page.on("response", console.response)
    return page, console


def password(running: stack_mod.RunningStack) -> str:
    users: dict[str, str] = json.loads((running.state / "dev-users.json").read_text())
    return users[COORDINATOR]


async def shoot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"dashboard-{name}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def sign_in(page: Page, running: stack_mod.RunningStack) -> None:
    """Through the issuer's page, by keyboard: type, Tab to the next field, Enter to submit."""
    await page.goto(f"{running.registry}/dashboard")
    await expect(page.get_by_role("heading", name="Sign in to caseshare")).to_be_visible()
    await page.get_by_label("Email").fill(COORDINATOR)
    await page.keyboard.press("Tab")
    await page.keyboard.type(password(running))
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Case map", level=1)).to_be_visible()


@pytest.fixture(scope="module")
async def coordinator(
    browser: Browser, running: stack_mod.RunningStack
) -> AsyncIterator[tuple[Page, Console]]:
    """One signed-in browser tab shared by the tests that only look."""
    page, console = await new_page(browser)
    await sign_in(page, running)
    yield page, console
    await page.context.close()


async def tokens(running: stack_mod.RunningStack, *clients: str) -> list[str]:
    """Tokens for several dev clients at once, asked of the issuer side by side."""
    return list(await asyncio.gather(*(asyncio.to_thread(running.token, c) for c in clients)))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def case_body(platform: str, group: str) -> dict[str, Any]:
    return {
        "reference": f"E2E-{secrets.token_hex(4).upper()}",
        "platform": platform,
        "legal_basis": "Art. 18 Budapest Convention production order",
        "offence_categories": ["fraud"],
        "selectors": [{"kind": "group_id", "value": group}],
    }


async def register(
    http: httpx.AsyncClient, token: str, platform: str, group: str
) -> dict[str, Any]:
    answer = await http.post("/v1/cases", json=case_body(platform, group), headers=bearer(token))
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


async def test_sign_in_goes_through_the_issuer_login_page(
    browser: Browser, running: stack_mod.RunningStack
) -> None:
    page, console = await new_page(browser)
    await page.goto(f"{running.registry}/dashboard/audit")
    assert page.url.startswith(f"{running.issuer}/authorize?")
    await page.get_by_label("Email").fill(COORDINATOR)
    await page.get_by_label("Password").fill("not-the-password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("not correct")
    await shoot(page, "sign-in")
    await page.get_by_label("Email").fill(COORDINATOR)
    await page.get_by_label("Password").fill(password(running))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    assert page.url == f"{running.registry}/dashboard/audit"
    await expect(page.locator("#audit-status")).to_contain_text("Intact")
    cookies = await page.context.cookies(f"{running.registry}/dashboard")
    assert {c["name"] for c in cookies if c["httpOnly"]} >= {"caseshare_dashboard"}
    assert await page.evaluate("document.cookie") == ""
    await shoot(page, "audit")
    assert console.errors == []
    await page.context.close()


async def test_case_map_counts_cases_registered_through_intake(
    coordinator: tuple[Page, Console], running: stack_mod.RunningStack
) -> None:
    page, console = coordinator
    fr, it = await tokens(running, "authority-fr", "authority-it")
    async with httpx.AsyncClient(base_url=running.intake, timeout=10) as http:
        made = [await register(http, fr, "pixelgram", f"map-{i}") for i in range(2)]
        await register(http, it, "pixelgram", "map-it")
    await page.goto(f"{running.registry}/dashboard")
    cell = page.locator('td[data-jurisdiction="FR"][data-platform="pixelgram"]')
    await expect(cell).to_have_text("2")
    await expect(
        page.locator('td[data-jurisdiction="IT"][data-platform="pixelgram"]')
    ).to_have_text("1")
    await shoot(page, "case-map")
    await cell.get_by_role("link").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("opened by FR")
    for case in made:
        await expect(page.get_by_role("link", name=case["reference"])).to_be_visible()
    await page.get_by_role("link", name=made[0]["reference"]).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {made[0]['reference']}")
    assert "map-0" not in await page.content()  # selectors never reach the desk
    await shoot(page, "case")
    assert console.errors == []


async def wait_for_delivery(http: httpx.AsyncClient, token: str, response_id: str) -> str:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        items = (await http.get("/v1/inbox", headers=bearer(token))).json()["items"]
        found = [i["delivery_id"] for i in items if i["response_id"] == response_id]
        if found:
            return str(found[0])
        await asyncio.sleep(0.3)
    raise TimeoutError("the delivery never reached the inbox")


async def test_live_fanout_shows_recipients_then_acknowledgements_and_reasons(
    coordinator: tuple[Page, Console], running: stack_mod.RunningStack
) -> None:
    page, console = coordinator
    group = "group-" + secrets.token_hex(6)
    isos = ("FR", "DE", "IT", "ES")
    clients = [f"authority-{iso.lower()}" for iso in isos]
    *authorities, platform_token = await tokens(running, *clients, "platform-telegram")
    authority = dict(zip(isos, authorities, strict=True))
    async with httpx.AsyncClient(base_url=running.intake, timeout=10) as http:
        fr_case = await register(http, authority["FR"], "telegram", group)
        await register(http, authority["DE"], "telegram", group)
        await register(http, authority["IT"], "telegram", "group-other-" + secrets.token_hex(4))
        await register(http, authority["ES"], "chirp", group)

        await page.goto(f"{running.registry}/dashboard/fanout")
        await expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
        body = {
            "scope": {
                "case_ids": [fr_case["id"]],
                "selectors": [{"kind": "group_id", "value": group}],
            },
            "handling_code": "H0",
            "issued_at": "2026-11-29T10:00:00Z",
            "disclosures": [
                {
                    "selector": {"kind": "group_id", "value": group},
                    "category": "subscriber",
                    "records": [{"type": "ip_address", "value": "198.51.100.23"}],
                }
            ],
        }
        platform = bearer(platform_token)
        submitted = await http.post("/v1/responses", json=body, headers=platform)
        assert submitted.status_code == 202, submitted.text
        response_id = submitted.json()["id"]

        fanout = page.locator(f'section[data-response-id="{response_id}"]')
        recipients = fanout.locator('tbody[data-list="deliveries"] tr[data-delivery-id]')
        await expect(recipients).to_have_count(2, timeout=LIVE_TIMEOUT_MS)
        for iso in ("DE", "FR"):
            row = fanout.locator(f'tr[data-delivery-id][data-jurisdiction="{iso}"]')
            await expect(row).to_have_attribute("data-state", "published")
        exclusions = fanout.locator('tbody[data-list="exclusions"]')
        await expect(exclusions.locator('tr[data-jurisdiction="IT"]')).to_contain_text(
            "scope mismatch", timeout=LIVE_TIMEOUT_MS
        )
        await expect(exclusions.locator('tr[data-jurisdiction="ES"]')).to_contain_text(
            "platform mismatch"
        )
        await shoot(page, "fanout-published")

        delivery = await wait_for_delivery(http, authority["FR"], response_id)
        acked = await http.post(f"/v1/inbox/{delivery}/ack", headers=bearer(authority["FR"]))
        assert acked.status_code == 200, acked.text
    fr_row = fanout.locator('tr[data-delivery-id][data-jurisdiction="FR"]')
    await expect(fr_row).to_have_attribute("data-state", "acknowledged", timeout=LIVE_TIMEOUT_MS)
    await expect(fr_row.locator('[data-field="state"]')).to_have_text("✓ acknowledged")
    await expect(fanout.locator('[data-field="summary"]')).to_contain_text("1 acknowledged")
    assert "198.51.100.23" not in await page.content()
    await shoot(page, "fanout-acknowledged")
    assert console.errors == []


async def test_the_demo_fans_out_live_on_the_dashboard(
    coordinator: tuple[Page, Console], running: stack_mod.RunningStack
) -> None:
    """`caseshare demo` runs while the coordinator watches: every recipient appears, then is
    acknowledged, with the routine exclusions folded and no disclosed value on the page."""
    page, console = coordinator
    await page.goto(f"{running.registry}/dashboard/fanout")
    await expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    env = {
        **os.environ,
        "CASESHARE_INTAKE_URL": running.intake,
        "CASESHARE_REGISTRY_URL": running.registry,
        "CASESHARE_ISSUER": running.issuer,
        "CASESHARE_STATE_DIR": str(running.state),
        "CASESHARE_BOOTSTRAP": running.bootstrap,
    }
    demo = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "caseshare.cli",
        "demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(demo.communicate(), 120)
    text = output.decode(errors="replace")
    assert demo.returncode == 0, text[-2000:]
    response_id = text.split("demo complete: demo response ", 1)[1].split()[0]

    fanout = page.locator(f'section[data-response-id="{response_id}"]')
    for iso in ("BE", "DE", "FR", "KR"):
        row = fanout.locator(f'tr[data-delivery-id][data-jurisdiction="{iso}"]')
        await expect(row).to_have_attribute("data-state", "acknowledged", timeout=LIVE_TIMEOUT_MS)
    recipients = fanout.locator('tbody[data-list="deliveries"] tr[data-delivery-id]')
    await expect(recipients).to_have_count(4)
    await expect(fanout.locator('[data-field="summary"]')).to_contain_text("4 acknowledged")
    content = await page.content()
    for disclosed in ("203.0.113.7", "198.51.100.23", "+33612345678", "+4915112345678"):
        assert disclosed not in content
    shot = await shoot(page, "demo")
    if os.environ.get("CASESHARE_UPDATE_DOCS") == "1":
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS_SCREENSHOT)
    assert console.errors == []
