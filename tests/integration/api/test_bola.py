"""Object-level isolation over HTTP: another jurisdiction's object is a 404, never a 403.

Every object route of intake is tried by FR on DE's object with a valid token holding every
authority scope; a token that lacks the route's scope gets 403 with `insufficient_scope`, for
every operation that either API documents.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.auth.scopes import Scope
from tests import factories
from tests.integration.api.conftest import World
from tests.tokens import TokenMint, bearer

pytestmark = pytest.mark.integration

PROBLEM = "application/problem+json"
# (method, path template, body): every intake route that names one object.
OBJECT_ROUTES = [
    ("GET", "/v1/cases/{case}", None),
    ("PATCH", "/v1/cases/{case}", {"status": "closed"}),
    ("GET", "/v1/inbox/{delivery}", None),
    ("POST", "/v1/inbox/{delivery}/ack", None),
]


def url(template: str, world: World, code: str) -> str:
    return template.format(case=world.cases[code], delivery=world.deliveries[code])


@pytest.mark.parametrize(("method", "template", "body"), OBJECT_ROUTES)
async def test_authority_gets_404_on_another_jurisdictions_object(
    intake: httpx.AsyncClient,
    mint: TokenMint,
    world: World,
    method: str,
    template: str,
    body: dict[str, Any] | None,
) -> None:
    as_fr = bearer(mint.authority("FR"))
    answer = await intake.request(method, url(template, world, "DE"), headers=as_fr, json=body)
    assert answer.status_code == 404
    assert answer.headers["content-type"] == PROBLEM
    # Indistinguishable from an object that does not exist at all: nothing to enumerate.
    unknown = template.format(case=uuid.uuid4(), delivery=uuid.uuid4())
    nowhere = await intake.request(method, unknown, headers=as_fr, json=body)
    assert nowhere.status_code == 404
    assert _without_instance(nowhere.json()) == _without_instance(answer.json())


async def test_the_owner_reaches_its_objects_and_the_refused_writes_changed_nothing(
    intake: httpx.AsyncClient, mint: TokenMint, world: World
) -> None:
    for code in ("FR", "DE"):
        owner = bearer(mint.authority(code))
        case = await intake.get(f"/v1/cases/{world.cases[code]}", headers=owner)
        assert case.status_code == 200
        assert (case.json()["opened_by"], case.json()["status"]) == (code, "open")
        item = await intake.get(f"/v1/inbox/{world.deliveries[code]}", headers=owner)
        assert item.status_code == 200
        assert item.json()["acknowledged_at"] is None


async def test_lists_show_only_the_callers_objects(
    intake: httpx.AsyncClient, mint: TokenMint, world: World
) -> None:
    as_fr = bearer(mint.authority("FR"))
    case_ids = await _all_ids(intake, "/v1/cases", as_fr, "id")
    delivery_ids = await _all_ids(intake, "/v1/inbox", as_fr, "delivery_id")
    assert str(world.cases["FR"]) in case_ids
    assert str(world.cases["DE"]) not in case_ids
    assert str(world.deliveries["FR"]) in delivery_ids
    assert str(world.deliveries["DE"]) not in delivery_ids


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(lambda m: m.coordinator((Scope.CASES_READ, Scope.INBOX_READ)), id="coord"),
        pytest.param(lambda m: m.platform("telegram", (Scope.CASES_READ,)), id="platform"),
    ],
)
async def test_callers_without_a_jurisdiction_cannot_read_authority_data(
    intake: httpx.AsyncClient, mint: TokenMint, world: World, token: Any
) -> None:
    """Holding the scope is not enough: the jurisdiction claim decides whose data it is."""
    answer = await intake.get(f"/v1/cases/{world.cases['FR']}", headers=bearer(token(mint)))
    assert answer.status_code == 403


async def test_a_platform_cannot_name_another_platforms_case(
    intake: httpx.AsyncClient, mint: TokenMint, world: World
) -> None:
    body = factories.response(case_ids=[world.cases["FR"]]).model_dump(mode="json")
    answer = await intake.post("/v1/responses", headers=bearer(mint.platform("chirp")), json=body)
    assert answer.status_code == 422
    assert str(world.cases["FR"]) not in answer.text


def _operations(app: FastAPI) -> list[tuple[str, str, set[str]]]:
    """(method, path, every scope any security alternative names) per documented operation."""
    found = []
    for path, item in app.openapi()["paths"].items():
        for method, operation in item.items():
            scopes = {s for alt in operation.get("security", []) for v in alt.values() for s in v}
            if scopes:
                found.append((method.upper(), path, scopes))
    return found


def _wrong_scope_token(mint: TokenMint, path: str, required: set[str]) -> str:
    """A token of the right kind of caller holding every scope except the ones required."""
    others = tuple(str(s) for s in Scope if s not in required)
    if Scope.RESPONSES_WRITE in required:
        return mint.platform("telegram", others)
    if path.startswith("/v1/registry"):
        return mint.coordinator(others)
    return mint.authority("FR", others)


@pytest.mark.parametrize("service", ["intake", "registry"])
async def test_a_token_without_the_routes_scope_gets_403_insufficient_scope(
    intake_app: FastAPI,
    registry_app: FastAPI,
    intake: httpx.AsyncClient,
    registry: httpx.AsyncClient,
    mint: TokenMint,
    world: World,
    service: str,
) -> None:
    app, client = (intake_app, intake) if service == "intake" else (registry_app, registry)
    operations = _operations(app)
    assert operations
    for method, path, required in operations:
        concrete = path.replace("{case_id}", str(world.cases["FR"]))
        for name in ("delivery_id", "response_id"):
            concrete = concrete.replace("{" + name + "}", str(uuid.uuid4()))
        concrete = concrete.replace("{code}", "FR").replace("{slug}", "telegram")
        token = _wrong_scope_token(mint, path, required)
        answer = await client.request(method, concrete, headers=bearer(token), json={})
        assert answer.status_code == 403, (method, path, answer.text)
        challenge = answer.headers.get("www-authenticate", "")
        assert challenge.startswith("Bearer ")
        assert 'error="insufficient_scope"' in challenge, (method, path)


async def _all_ids(
    client: httpx.AsyncClient, path: str, headers: dict[str, str], field: str
) -> set[str]:
    ids: set[str] = set()
    cursor: str | None = None
    while True:
        params = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = await client.get(path, headers=headers, params=params)
        assert page.status_code == 200, page.text
        ids |= {item[field] for item in page.json()["items"]}
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return ids


def _without_instance(problem: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in problem.items() if k != "instance"}


async def test_an_authority_holding_the_scope_cannot_submit_a_response(
    intake: httpx.AsyncClient, mint: TokenMint, world: World
) -> None:
    """Submitting is for platforms: the platform claim decides, not the scope alone."""
    token = mint.authority("FR", (Scope.RESPONSES_WRITE,))
    answer = await intake.post("/v1/responses", json={}, headers=bearer(token))
    assert answer.status_code == 403
    assert answer.headers["content-type"] == "application/problem+json"
