"""Helpers for driving the `caseshare` CLI, the example consumer and kcat against an e2e stack.

Each test works in its own jurisdiction (and a fresh selector), so tests sharing one stack never
see each other's cases, deliveries or link notices.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from typing import Any

import httpx
from typer.testing import CliRunner, Result

from caseshare.cli import app
from caseshare.stack.supervised import RunningStack


def cli_env(stack: RunningStack) -> dict[str, str]:
    """The environment a user would export to point the CLI at this stack."""
    return {
        "CASESHARE_INTAKE_URL": stack.intake,
        "CASESHARE_REGISTRY_URL": stack.registry,
        "CASESHARE_ISSUER": stack.issuer,
        "CASESHARE_STATE_DIR": str(stack.state),
        "CASESHARE_BOOTSTRAP": stack.bootstrap,
        "COLUMNS": "200",
    }


def subprocess_env(stack: RunningStack) -> dict[str, str]:
    return {**os.environ, **cli_env(stack)}


def cli(stack: RunningStack, *args: str) -> Result:
    """Run one CLI command in-process, as `caseshare ARGS` would with the stack's env."""
    return CliRunner().invoke(app, list(args), env=cli_env(stack))


def call(stack: RunningStack, client_id: str, method: str, url: str, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {stack.token(client_id)}"}
    answer = httpx.request(method, url, headers=headers, timeout=10, **kw)
    answer.raise_for_status()
    return answer.json()


@dataclass
class Delivered:
    """A case of one jurisdiction and a response naming it, delivered to its inbox."""

    jurisdiction: str
    case: dict[str, Any]
    response_id: str
    delivery_id: str
    group: str


def tag() -> str:
    return secrets.token_hex(4)


def response_body(case_id: str, group: str, ip: str = "203.0.113.50") -> dict[str, Any]:
    return {
        "scope": {"case_ids": [case_id]},
        "handling_code": "H0",
        "issued_at": "2026-11-29T10:00:00Z",
        "disclosures": [
            {
                "selector": {"kind": "group_id", "value": group},
                "category": "subscriber",
                "records": [
                    {"type": "ip_address", "value": ip},
                    {"type": "phone_number", "value": "+33612345678"},
                ],
            }
        ],
    }


def deliver(stack: RunningStack, jurisdiction: str, *, within: float = 20) -> Delivered:
    """Register a case for `jurisdiction`, have telegram respond, wait until it is published."""
    group = f"grp_{tag()}"
    authority = f"authority-{jurisdiction.lower()}"
    case = call(
        stack,
        authority,
        "POST",
        f"{stack.intake}/v1/cases",
        json={
            "reference": f"{jurisdiction}-{tag()}",
            "platform": "telegram",
            "legal_basis": "Art. 18 Budapest Convention",
            "offence_categories": ["fraud"],
            "selectors": [{"kind": "group_id", "value": group}],
        },
    )
    accepted = call(
        stack,
        "platform-telegram",
        "POST",
        f"{stack.intake}/v1/responses",
        json=response_body(case["id"], group),
    )
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        items = call(stack, authority, "GET", f"{stack.intake}/v1/inbox")["items"]
        ours = [i for i in items if i["response_id"] == accepted["id"]]
        if ours and ours[0]["state"] != "pending":
            return Delivered(jurisdiction, case, accepted["id"], ours[0]["delivery_id"], group)
        time.sleep(0.2)
    raise TimeoutError(f"no published delivery for {jurisdiction} after {within}s")


def delivery_state(stack: RunningStack, d: Delivered) -> dict[str, Any]:
    authority = f"authority-{d.jurisdiction.lower()}"
    item: dict[str, Any] = call(stack, authority, "GET", f"{stack.intake}/v1/inbox/{d.delivery_id}")
    return item
