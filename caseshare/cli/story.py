"""`caseshare demo`: the story caseshare exists for, played against the running stack.

France opens a case against Telegram on a group chat; Germany and Belgium register cases on the
same group and are told of the links; South Korea, an associated country, registers through
France, which accepts to coordinate it; Norway, a partner, has no case. France issues a
production order to Telegram through the hub; Telegram acknowledges it and answers with IP
addresses and phone numbers, naming the order. France receives at once and the other
deliveries are held until France releases them; the fan-out appears live (FR, DE, BE and KR
receive; everyone else is excluded with a reason), each recipient opens its sealed delivery
with its own key while the next recipient's key fails on it, and every delivery is acknowledged.

References and the group id carry a fresh tag, so the demo can run again on the same stack.
The disclosures are invented (documentation IP ranges, made-up numbers).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from caseshare.cli import fanout
from caseshare.cli import inbox_reader as inbox
from caseshare.cli.cases import case_body, register_case
from caseshare.cli.client import Api, CliError, ExitCode, Settings
from caseshare.cli.requests import issue_request
from caseshare.cli.requests import step as request_step
from caseshare.cli.responses import submit_response
from caseshare.cli.ui import console
from shared import sealing
from shared.events import CaseLinkFound, ResponseDelivered
from shared.kafka import Envelope

EXPECTED_RECIPIENTS = ("BE", "DE", "FR", "KR")
PARTNER_WITHOUT_CASE = "NO"
STEPS = 8


@dataclass
class Story:
    """The demo's state: its tag, the cases it opened (by jurisdiction) and the response."""

    cfg: Settings
    timeout: float
    tag: str = field(default_factory=lambda: secrets.token_hex(3).upper())
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    request_id: str | None = None
    response_id: uuid.UUID | None = None

    @property
    def group(self) -> str:
        return f"fraud_ring_{self.tag.lower()}"

    def api(self, jurisdiction: str) -> Api:
        return Api(self.cfg, f"authority-{jurisdiction.lower()}")


def step(number: int, title: str) -> None:
    console.rule(f"[bold][{number}/{STEPS}] {escape(title)}", align="left")


async def open_case(story: Story, cc: str, *, coordinator: str | None = None) -> None:
    body = case_body(
        reference=f"{cc}-DEMO-{story.tag}",
        platform="telegram",
        legal_basis="Art. 18 Budapest Convention production order",
        offences=["fraud", "money_laundering"],
        selectors=[f"group_id={story.group}"],
        coordinator=coordinator,
    )
    case = await register_case(story.api(cc), body, idempotency_key=f"demo-{story.tag}-{cc}")
    story.cases[cc] = case
    via = f" through coordinator {coordinator}" if coordinator else ""
    console.print(f"{cc} registered case [bold]{case['reference']}[/] ({case['id']}){via}")


async def _link_ids(story: Story, new: list[str]) -> set[uuid.UUID]:
    """The links of the cases of `new`, from their openers' own link lists (the notices name
    no case, so this is how the demo tells this run's notices from earlier runs')."""
    ids: set[uuid.UUID] = set()
    for cc in new:
        links = await story.api(cc).get("intake", "/v1/links", what="links")
        case_id = str(story.cases[cc]["id"])
        ids |= {uuid.UUID(link["id"]) for link in links if link["case_id"] == case_id}
    return ids


async def show_links(story: Story, new: list[str]) -> None:
    """Wait for, then print, the link notices that the cases of `new` caused."""
    ids = await _link_ids(story, new)
    others = [cc for cc in story.cases if cc not in new]
    # Each pair of linked cases tells both openers; new cases link to every earlier one
    # and to each other.
    pairs = len(new) * len(others) + len(new) * (len(new) - 1) // 2

    def caused_by_new(envelope: Envelope) -> bool:
        event = envelope.event
        return isinstance(event, CaseLinkFound) and event.link_id in ids

    notices: list[Envelope] = []
    with console.status("waiting for link notices on the inbox topics"):
        for cc in story.cases:
            expect = (len(story.cases) - 1) if cc in new else len(new)
            notices += await inbox.peek(
                story.cfg, cc, match=caused_by_new, expect=expect, within=story.timeout
            )
    events = [e.event for e in notices if isinstance(e.event, CaseLinkFound)]
    for event in sorted(events, key=lambda e: (e.jurisdiction, e.other_jurisdiction)):
        console.print("  " + inbox.link_notice(event))
    if len(notices) < 2 * pairs:
        seen = len(notices)
        raise CliError(f"expected {2 * pairs} link notices, saw {seen}", ExitCode.UNEXPECTED)


async def order(story: Story) -> None:
    """France orders Telegram to produce subscriber data on the group; Telegram acknowledges."""
    body = {
        "case_id": str(story.cases["FR"]["id"]),
        "type": "production",
        "platform": "telegram",
        "categories": ["subscriber"],
        "selectors": [{"kind": "group_id", "value": story.group}],
        "legal_basis": "Art. 5 Regulation (EU) 2023/1543, European Production Order",
        "issuing_authority": "Parquet de Paris, J3 cybercrime section",
    }
    req = await issue_request(story.api("FR"), body, idempotency_key=f"demo-{story.tag}-order")
    story.request_id = req["id"]
    console.print(
        f"FR issued production order [bold]{req['id']}[/] to telegram, "
        f"due {req['deadline_at']} (enforcing state {req['enforcing_jurisdiction']})"
    )
    telegram = Api(story.cfg, "platform-telegram")
    path = f"/v1/platform/requests/{req['id']}/acknowledge"
    acked = await request_step(telegram, path, "acknowledgement")
    console.print(f"telegram acknowledged the order: {acked['state']}")


def response_body(story: Story) -> dict[str, Any]:
    fr_case = str(story.cases["FR"]["id"])
    records = [
        {"type": "ip_address", "value": "203.0.113.7", "observed_at": "2026-11-20T21:14:00Z"},
        {"type": "ip_address", "value": "198.51.100.23", "observed_at": "2026-11-21T08:02:00Z"},
        {"type": "phone_number", "value": "+33612345678"},
        {"type": "phone_number", "value": "+4915112345678"},
    ]
    return {
        "request_reference": f"TG-LE-{story.tag}",
        "request_id": story.request_id,
        "requesting_case_id": fr_case,
        "scope": {"case_ids": [fr_case], "selectors": [{"kind": "group_id", "value": story.group}]},
        "handling_code": "H0",
        "issued_at": "2026-11-29T10:00:00Z",
        "disclosures": [
            {
                "selector": {"kind": "group_id", "value": story.group},
                "category": "subscriber",
                "records": records,
            }
        ],
    }


async def disclose(story: Story) -> None:
    telegram = Api(story.cfg, "platform-telegram")
    accepted, _ = await submit_response(
        telegram, response_body(story), idempotency_key=f"demo-{story.tag}-response"
    )
    story.response_id = uuid.UUID(accepted["id"])
    console.print(
        f"telegram answered the order with 2 IP addresses and 2 phone numbers: response "
        f"[bold]{accepted['id']}[/], fan-out {accepted['fanout_state']}"
    )


async def accept_coordination(story: Story, cc: str, coordinator: str) -> None:
    """The named coordinator consents; until then the case has no standing and no links."""
    case_id = story.cases[cc]["id"]
    answer = await story.api(coordinator).call(
        "POST",
        "intake",
        f"/v1/cases/{case_id}/coordination",
        json_body={"decision": "accept"},
        what="coordination answer",
    )
    status = answer.json()["case_status"]
    console.print(f"{coordinator} accepted to coordinate {cc}'s case: it is now {status}")


async def release_held(story: Story) -> None:
    """France, the originator, decides on each held delivery: here it releases them all."""
    fr = story.api("FR")
    held: list[dict[str, Any]] = []
    with console.status("waiting for the deliveries held for France's decision"):
        deadline = asyncio.get_running_loop().time() + story.timeout
        while len(held) < len(EXPECTED_RECIPIENTS) - 1:
            page = await fr.get("intake", "/v1/releases", what="releases", limit=100)
            held = [r for r in page["items"] if r["response_id"] == str(story.response_id)]
            if asyncio.get_running_loop().time() > deadline:
                raise CliError("the held deliveries did not appear", ExitCode.UNEXPECTED)
            await asyncio.sleep(0.3)
    for release in sorted(held, key=lambda r: r["jurisdiction"]):
        await fr.call(
            "POST",
            "intake",
            f"/v1/releases/{release['id']}",
            json_body={"decision": "release", "reason": "demo: shared with every party"},
            what="release",
        )
        console.print(f"FR released the delivery held for {release['jurisdiction']}")


async def show_fanout(story: Story) -> list[str]:
    """Follow the fan-out live until every delivery is on its inbox topic."""
    assert story.response_id is not None
    coordinator = Api(story.cfg, fanout.COORDINATOR)
    result, done = await fanout.watch(
        coordinator, story.response_id, until=fanout.settled, within=story.timeout
    )
    recipients = sorted(d["jurisdiction"] for d in result["deliveries"])
    if not done or tuple(recipients) != EXPECTED_RECIPIENTS:
        raise CliError(
            f"fan-out reached {recipients or 'nobody'}; expected {list(EXPECTED_RECIPIENTS)}",
            ExitCode.UNEXPECTED,
        )
    partner = [e for e in result["exclusions"] if e["jurisdiction"] == PARTNER_WITHOUT_CASE]
    for e in partner:
        console.print(f"partner {e['jurisdiction']} excluded ({e['reason']}): {e['detail']}")
    return recipients


async def open_inboxes(story: Story, recipients: list[str]) -> dict[str, str]:
    """Each recipient decrypts its own delivery; the next recipient's key must fail on it."""
    from caseshare.cli.evidence import load_jwks

    delivered: dict[str, str] = {}
    hub_jwks = load_jwks(None, story.cfg)
    for i, cc in enumerate(recipients):
        envelope = await _delivery(story, cc)
        event = envelope.event
        assert isinstance(event, ResponseDelivered)
        own = story.cfg.key_file(cc)
        try:
            disclosures = inbox.open_delivery(event, inbox.load_key(own), own, hub_jwks)
        except inbox.Rejected as exc:
            raise CliError(f"{cc} rejected its delivery: {exc}", ExitCode.UNEXPECTED) from None
        console.print(inbox.delivery_panel(event, disclosures, None))
        other = recipients[(i + 1) % len(recipients)]
        _prove_sealed(event, other, inbox.load_key(story.cfg.key_file(other)))
        delivered[cc] = envelope.ce_id
    return delivered


async def _delivery(story: Story, cc: str) -> Envelope:
    def ours(envelope: Envelope) -> bool:
        event = envelope.event
        return isinstance(event, ResponseDelivered) and event.response_id == story.response_id

    with console.status(f"reading {story.cfg.inbox_topic(cc)}"):
        found = await inbox.peek(story.cfg, cc, match=ours, expect=1, within=story.timeout)
    if not found:
        raise CliError(f"no delivery for {cc} on its inbox topic", ExitCode.UNEXPECTED)
    return found[0]


def _prove_sealed(event: ResponseDelivered, other: str, key: dict[str, Any]) -> None:
    try:
        sealing.unseal(event.sealed_disclosures or "", key)
    except sealing.SealError as exc:
        console.print(
            f"  [green]sealed:[/] {other}'s key cannot open {event.jurisdiction}'s delivery "
            f"({escape(str(exc))})"
        )
        return
    raise CliError(f"{other}'s key opened {event.jurisdiction}'s delivery", ExitCode.UNEXPECTED)


async def acknowledge_all(story: Story, delivered: dict[str, str]) -> None:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("acknowledging deliveries", total=len(delivered))
        for cc, delivery_id in delivered.items():
            await inbox.acknowledge(story.api(cc), delivery_id)
            progress.advance(task)
    assert story.response_id is not None
    coordinator = Api(story.cfg, fanout.COORDINATOR)
    await fanout.watch(coordinator, story.response_id, until=fanout.closed, within=story.timeout)


async def play(story: Story) -> None:
    step(1, "France opens a case against Telegram on a group chat")
    await open_case(story, "FR")
    step(2, "Germany and Belgium register cases on the same group: links are found")
    for cc in ("DE", "BE"):
        await open_case(story, cc)
    await show_links(story, ["DE", "BE"])
    step(3, "South Korea (associated) registers through France as its coordinator")
    await open_case(story, "KR", coordinator="FR")
    await accept_coordination(story, "KR", "FR")
    await show_links(story, ["KR"])
    step(4, f"Norway ({PARTNER_WITHOUT_CASE}), a partner, has no case on this group")
    console.print("it will be considered for the response and excluded, with the reason")
    step(5, "France orders Telegram to produce; Telegram acknowledges and answers the order")
    await order(story)
    await disclose(story)
    step(6, "France receives at once, decides on the rest; the fan-out, live")
    await release_held(story)
    recipients = await show_fanout(story)
    step(7, "Each recipient's inbox: sealed for it alone")
    delivered = await open_inboxes(story, recipients)
    step(8, "Every recipient acknowledges; the fan-out closes")
    await acknowledge_all(story, delivered)
