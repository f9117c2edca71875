"""The coordinator dashboard in headless Chromium, against the whole stack run by `caseshare up`.

Cases and responses go in through intake with real tokens, the way authorities and platforms
send them; the browser only looks. `caseshare demo` runs once, while the live fan-out page is
open; the map, fan-out picture and statistics tests all look at what it made, at 1280x800 and
390x844, and axe-core (vendored in tests/e2e/vendor) checks each page. Screenshots are kept in
test-artifacts/; with CASESHARE_UPDATE_DOCS=1 they also refresh the README's pictures in docs/.
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
from dataclasses import dataclass
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
DOCS = ROOT / "docs"
AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
VIEWPORTS = {"wide": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
DEMO_RECIPIENTS = ("BE", "DE", "FR", "KR")
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

    # the platform recalls it: DE's unacknowledged delivery is withdrawn, live; FR's stays
    # acknowledged (its deletion is asked for)
    async with httpx.AsyncClient(base_url=running.intake, timeout=10) as http:
        recall = f"/v1/responses/{response_id}/recall"
        recalled = await http.post(recall, json={"reason": "sent in error"}, headers=platform)
        assert recalled.status_code == 200, recalled.text
    de_row = fanout.locator('tr[data-delivery-id][data-jurisdiction="DE"]')
    await expect(de_row).to_have_attribute("data-state", "recalled", timeout=LIVE_TIMEOUT_MS)
    await expect(de_row.locator('[data-field="state"]')).to_have_text("↩ recalled")
    await expect(fr_row).to_have_attribute("data-state", "acknowledged")
    spoke = fanout.locator('g.spoke[data-jurisdiction="DE"]')
    await expect(spoke).to_have_attribute("data-state", "recalled")
    assert console.errors == []


@dataclass(frozen=True)
class DemoRun:
    response_id: str
    output: str


# Records every (response, jurisdiction, state) the fan-out picture draws, as it draws it.
WATCH_SPOKES = """() => {
  window.seenSpokes = [];
  const log = () => {
    for (const spoke of document.querySelectorAll("section.fanout g.spoke")) {
      const key = [spoke.closest("section").dataset.responseId, spoke.dataset.jurisdiction,
                   spoke.dataset.state].join(" ");
      if (!window.seenSpokes.includes(key)) window.seenSpokes.push(key);
    }
  };
  new MutationObserver(log).observe(document.getElementById("fanouts"),
                                    {subtree: true, childList: true, attributes: true});
}"""


@pytest.fixture(scope="module")
async def demo(coordinator: tuple[Page, Console], running: stack_mod.RunningStack) -> DemoRun:
    """`caseshare demo`, run once while the coordinator watches the live fan-out page."""
    page, _ = coordinator
    await page.goto(f"{running.registry}/dashboard/fanout")
    await expect(page.locator("#stream-status")).to_have_attribute("data-state", "live")
    await page.evaluate(WATCH_SPOKES)
    env = {
        **os.environ,
        "CASESHARE_INTAKE_URL": running.intake,
        "CASESHARE_REGISTRY_URL": running.registry,
        "CASESHARE_ISSUER": running.issuer,
        "CASESHARE_STATE_DIR": str(running.state),
        "CASESHARE_BOOTSTRAP": running.bootstrap,
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "caseshare.cli",
        "demo",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 120)
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-2000:]
    response_id = text.split("demo complete: demo response ", 1)[1].split()[0]
    return DemoRun(response_id=response_id, output=text)


def keep_for_docs(shot: Path, name: str) -> None:
    if os.environ.get("CASESHARE_UPDATE_DOCS") == "1":
        DOCS.mkdir(exist_ok=True)
        shutil.copyfile(shot, DOCS / name)


async def serious_accessibility_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings on the page as it stands."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(AXE.read_text())  # evaluated by the driver, so the page CSP allows it
    found: list[dict[str, Any]] = await page.evaluate(
        """() => axe.run(document, {resultTypes: ["violations"]}).then((result) =>
             result.violations.map((v) => ({id: v.id, impact: v.impact,
                                            nodes: v.nodes.map((n) => n.target.join(" "))})))"""
    )
    return [
        f"{v['id']} ({v['impact']}): {v['nodes'][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


async def at_each_viewport(page: Page, name: str) -> dict[str, Path]:
    """Both sizes: nothing wider than the screen, no serious axe finding, a screenshot each."""
    shots = {}
    for size, viewport in VIEWPORTS.items():
        await page.set_viewport_size(viewport)
        shots[size] = await shoot(page, f"{name}-{size}")
        overflow = await page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{name} scrolls sideways at {size}"
        assert await serious_accessibility_violations(page) == [], f"{name} at {size}"
    await page.set_viewport_size({"width": 1280, "height": 900})
    return shots


async def test_the_demo_fans_out_live_on_the_dashboard(
    coordinator: tuple[Page, Console], demo: DemoRun
) -> None:
    """Every recipient appears, then is acknowledged, in the tables and in the picture, with the
    routine exclusions folded and grouped by reason and no disclosed value on the page."""
    page, console = coordinator
    fanout = page.locator(f'section[data-response-id="{demo.response_id}"]')
    for iso in DEMO_RECIPIENTS:
        row = fanout.locator(f'tr[data-delivery-id][data-jurisdiction="{iso}"]')
        await expect(row).to_have_attribute("data-state", "acknowledged", timeout=LIVE_TIMEOUT_MS)
        spoke = fanout.locator(f'g.spoke[data-jurisdiction="{iso}"]')
        await expect(spoke).to_have_attribute("data-state", "acknowledged")
    recipients = fanout.locator('tbody[data-list="deliveries"] tr[data-delivery-id]')
    await expect(recipients).to_have_count(4)
    await expect(fanout.locator("g.spoke")).to_have_count(4)
    await expect(fanout.locator('[data-field="summary"]')).to_contain_text("4 acknowledged")
    # The page was never reloaded: each spoke was drawn published, then redrawn acknowledged.
    seen: list[str] = await page.evaluate("() => window.seenSpokes")
    for iso in DEMO_RECIPIENTS:
        drawn = [k.split()[2] for k in seen if k.startswith(f"{demo.response_id} {iso} ")]
        assert drawn[0] in ("pending", "published"), (iso, drawn)
        assert drawn[-1] == "acknowledged", (iso, drawn)
    groups = fanout.locator(".excluded-groups li")
    await expect(groups.first).to_have_attribute("data-reason", "no_open_case")
    assert int(await groups.first.get_attribute("data-count") or 0) > 30
    content = await page.content()
    for disclosed in ("203.0.113.7", "198.51.100.23", "+33612345678", "+4915112345678"):
        assert disclosed not in content
    keep_for_docs(await shoot(page, "demo"), "dashboard.png")
    await page.goto(f"{page.url.split('/dashboard')[0]}/dashboard/responses/{demo.response_id}")
    await expect(page.locator("g.spoke")).to_have_count(4)
    shots = await at_each_viewport(page, "fanout-picture")
    picture = await page.locator("[data-picture]").screenshot(path=str(ARTIFACTS / "fanout.png"))
    assert picture
    keep_for_docs(ARTIFACTS / "fanout.png", "fanout.png")
    assert shots
    assert console.errors == []


async def test_the_map_shades_the_demo_countries_and_lists_a_country_cases_by_keyboard(
    coordinator: tuple[Page, Console], running: stack_mod.RunningStack, demo: DemoRun
) -> None:
    page, console = coordinator
    await page.goto(f"{running.registry}/dashboard?platform=telegram&status=open")
    for iso in DEMO_RECIPIENTS:
        country = page.locator(f'a.country[data-code="{iso}"]')
        await expect(country).to_have_count(1)
        assert int(await country.get_attribute("data-level") or 0) >= 1, iso
    # Countries without a case are drawn unshaded and are not links (the stack is shared, so
    # which ones varies; most of the 43 seeded jurisdictions never open a telegram case here).
    await expect(page.locator('path.country[data-cases="0"][data-level="0"]')).not_to_have_count(0)
    await expect(page.locator("#case-map")).to_be_visible()  # the table stays, below the map
    shots = await at_each_viewport(page, "map")
    keep_for_docs(shots["wide"], "map.png")
    # Keyboard: the skip link first, then Tab through the countries to Korea, then Enter.
    await page.keyboard.press("Tab")
    await expect(page.locator(".skip")).to_be_focused()
    korea = page.locator('a.country[data-code="KR"]')
    for _ in range(80):
        await page.keyboard.press("Tab")
        if await korea.evaluate("(el) => el === document.activeElement"):
            break
    await expect(korea).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", level=1)).to_contain_text("opened by KR")
    await expect(page.locator("#cases tbody tr")).not_to_have_count(0)
    assert console.errors == []


async def test_statistics_draw_every_chart_from_the_endpoint_figures(
    coordinator: tuple[Page, Console], running: stack_mod.RunningStack, demo: DemoRun
) -> None:
    page, console = coordinator
    await page.goto(f"{running.registry}/dashboard/statistics")
    charts = page.locator("[data-chart]")
    await expect(charts).to_have_count(4)
    for chart in await charts.all():
        await expect(chart).to_have_attribute("data-rendered", "true")
        await expect(chart.locator("canvas")).to_have_count(1)
    # Series with data today: responses per day, acknowledgement times, deliveries by state.
    # Deadline compliance stays empty (but drawn) until legal requests are recorded.
    for name in ("per-day", "latency", "states"):
        points = await page.locator(f'[data-chart="{name}"]').get_attribute("data-points")
        assert int(points or 0) > 0, name
    label = await page.locator('[data-chart="latency"]').get_attribute("aria-label")
    assert label
    assert "KR" in label  # ECharts' aria description names each jurisdiction
    await expect(page.locator('[data-field="held"]')).to_have_text("0")
    shots = await at_each_viewport(page, "statistics")
    keep_for_docs(shots["wide"], "statistics.png")
    content = await page.content()
    assert not [value for value in ("203.0.113.7", "+33612345678") if value in content]
    assert console.errors == []
