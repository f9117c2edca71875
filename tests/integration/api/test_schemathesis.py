"""Schemathesis against the OpenAPI documents of intake and registry, with valid tokens.

Each operation is called with a token of the kind of caller it serves and the scopes it
declares. The run looks for server errors, responses that break their own schema, and (a check
of ours) any object FR can reach that DE can reach too: every request FR makes successfully on
an object route is replayed with DE's token and must get 404.

Every generated request, and a valid request of each operation that stores text, is also
replayed with each string it carries (in the body, at any depth, and in the query) replaced by
text PostgreSQL cannot store, NUL or a lone surrogate, which must get 422, and by a Cyrillic
look-alike of a case reference, which must never get a 5xx and is refused with 422 where the
field is a case reference.

The apps run over a database of their own, since the fuzzer changes reference data through the
admin API; path parameters are pointed at objects FR owns, so object routes are exercised on
real objects and not only on random ids that 404 for everyone.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu
from services.intake.app import create_app as create_intake
from services.registry import migrate
from services.registry.app import create_app as create_registry
from services.registry.reference import seed
from shared.auth.scopes import Scope
from shared.db import create_engine, create_sessionmaker, transaction
from tests import factories
from tests.integration.api.conftest import World, build_world, intake_settings, registry_settings
from tests.tokens import TokenMint

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

FUZZ_DATABASE = "caseshare_fuzz"
UNSTORABLE = ("nul\x00byte", "lone\ud800surrogate")
LOOK_ALIKE = "\u0420NF-2026-0042"  # starts with CYRILLIC CAPITAL LETTER ER, not a Latin P
Path_ = tuple[str | int, ...]
AUTHORITY_SCOPES = {Scope.CASES_WRITE, Scope.CASES_READ, Scope.INBOX_READ}
FUZZ = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.generate],
)


@pytest.fixture(scope="session")
def fuzz_database_url(postgres: EmbeddedPostgres) -> str:
    postgres.psql(f'DROP DATABASE IF EXISTS "{FUZZ_DATABASE}"')
    postgres.psql(f'CREATE DATABASE "{FUZZ_DATABASE}"')
    url = postgres.url.rsplit("/", 1)[0] + f"/{FUZZ_DATABASE}"
    migrate.upgrade(url)
    return url


@pytest.fixture(scope="session")
async def fuzz_world(fuzz_database_url: str, state_dir: Path) -> AsyncIterator[World]:
    engine = create_engine(fuzz_database_url, pool_size=2)
    sm = create_sessionmaker(engine)
    async with transaction(sm) as session:
        await seed.load(session)
        await seed.ensure_demo_keys(session, state_dir / "keys")
    yield await build_world(sm)
    await engine.dispose()


@pytest.fixture(scope="session")
def lifespans() -> Iterator[None]:
    """Schemathesis starts each app's lifespan on its own loop; stop them before PostgreSQL."""
    yield
    asgi.shutdown_lifespans()


def _load(app: FastAPI, world: World) -> Any:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    owned = {
        "case_id": world.cases["FR"],
        "delivery_id": world.deliveries["FR"],
        "response_id": world.response_id,
    }

    @schema.hook
    def map_path_parameters(
        context: Any, path_parameters: dict[str, Any] | None
    ) -> dict[str, Any] | None:
        if path_parameters is None:
            return None
        return {k: owned.get(k, v) for k, v in path_parameters.items()}

    return schema


# The fuzzer writes far faster than any one client may (one run sent more than the burst
# of 200 writes within a second and got 429 where 422 was due). Throttling is tested by
# test_write_limits.py and test_read_limits.py; here it would only hide the answers under test.
UNTHROTTLED = {
    "WRITE_RATE_PER_SECOND": 1e6,
    "WRITE_RATE_BURST": 1_000_000,
    "READ_RATE_PER_SECOND": 1e6,
    "READ_RATE_BURST": 1_000_000,
}


@pytest.fixture(scope="session")
def intake_schema(
    fuzz_database_url: str,
    fuzz_world: World,
    mint: TokenMint,
    broker: EmbeddedTansu,
    lifespans: None,
) -> Any:
    values = {"KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap, **UNTHROTTLED}
    app = create_intake(intake_settings(fuzz_database_url, **values), http=mint.http())
    return _load(app, fuzz_world)


@pytest.fixture(scope="session")
def registry_schema(
    fuzz_database_url: str,
    fuzz_world: World,
    mint: TokenMint,
    broker: EmbeddedTansu,
    lifespans: None,
) -> Any:
    values = {
        "KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "REGISTRY_STREAM_MAX_SECONDS": 1,
        "REGISTRY_STREAM_PING_SECONDS": 1,
        **UNTHROTTLED,
    }
    app = create_registry(registry_settings(fuzz_database_url, **values), http=mint.http())
    return _load(app, fuzz_world)


def _scopes(case: Case) -> set[str]:
    security = case.operation.definition.raw.get("security", [])
    return {scope for alternative in security[:1] for v in alternative.values() for scope in v}


def token_for(mint: TokenMint, case: Case) -> str:
    """A token of the caller this operation serves, holding the scopes it declares."""
    scopes = tuple(sorted(_scopes(case)))
    if Scope.RESPONSES_WRITE in scopes:
        return mint.platform("telegram", scopes)
    if AUTHORITY_SCOPES & set(scopes):
        return mint.authority("FR")
    if Scope.REGISTRY_ADMIN in scopes:
        return mint.admin(scopes)
    return mint.coordinator(scopes)


def cross_jurisdiction_check(
    mint: TokenMint, probed: set[str]
) -> Callable[[CheckContext, Response, Case], None]:
    """FR's successful request on an object, replayed as DE, must find nothing."""

    def cross_jurisdiction_isolation(ctx: CheckContext, response: Response, case: Case) -> None:
        if not case.path_parameters or not AUTHORITY_SCOPES & _scopes(case):
            return
        if not 200 <= response.status_code < 300:
            return
        probed.add(case.operation.label)
        as_de = {**(case.headers or {}), "Authorization": f"Bearer {mint.authority('DE')}"}
        peer = case.call(headers=as_de)
        if peer.status_code != 404:
            raise AssertionError(
                f"DE got {peer.status_code} on FR's object: {case.method} {case.formatted_path}"
            )

    return cross_jurisdiction_isolation


def string_paths(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Where a string sits in a JSON value: each string member and each object key."""
    if isinstance(value, str):
        yield path
    elif isinstance(value, dict):
        for key, member in value.items():
            yield (*path, "<key>", key)
            yield from string_paths(member, (*path, key))
    elif isinstance(value, list):
        for index, member in enumerate(value):
            yield from string_paths(member, (*path, index))


def replaced(value: Any, path: Path_, new: str) -> Any:
    """A copy of `value` with the string at `path` (or the key `path` names) set to `new`."""
    if not path:
        return new
    if path[0] == "<key>":
        return {(new if k == path[1] else k): v for k, v in value.items()}
    out = copy.copy(value)
    out[path[0]] = replaced(value[path[0]], path[1:], new)
    return out


def field_name(path: Path_) -> str:
    """The schema path of a string, list indices dropped: `disclosures.records.value`."""
    return ".".join(str(p) for p in path if not isinstance(p, int))


def send_replaced(case: Case, headers: dict[str, str], where: str, path: Path_, bad: str) -> int:
    """Send `case` with one string replaced. A body goes out as JSON with ASCII escapes, the
    only way a lone surrogate travels; a query string cannot carry one, so it gets NUL."""
    if where == "body":
        raw = json.dumps(replaced(case.body, path, bad)).encode()
        sent = headers | {"Content-Type": "application/json"}
        return case.call(headers=sent, data=raw).status_code
    original = case.query
    case.query = replaced(original, path, bad.replace("\ud800", "\x00"))
    try:
        return case.call(headers=headers).status_code
    finally:
        case.query = original


def poison(case: Case, headers: dict[str, str], poisoned: set[str]) -> None:
    """Replay `case` with each of its strings made unstorable or look-alike; see the module."""
    label = case.operation.label
    targets = [("body", p) for p in string_paths(case.body)] if case.body is not None else []
    targets += [("query", (k,)) for k, v in (case.query or {}).items() if isinstance(v, str)]
    for where, path in targets:
        name = f"{label} {where}.{field_name(path)}"
        if name in poisoned:
            continue  # once per field and operation keeps the run short
        poisoned.add(name)
        for bad, expected in [(text, {422}) for text in UNSTORABLE] + [(LOOK_ALIKE, None)]:
            status = send_replaced(case, headers, where, path, bad)
            if expected is None and path[-1] == "reference":
                expected = {422}
            if status >= 500 or (expected is not None and status not in expected):
                raise AssertionError(f"{name} = {bad!r} got {status}")


def valid_bodies(world: World) -> dict[str, dict[str, Any]]:
    """A body each operation that stores text accepts, so a replay proves the field is checked
    (a generated body is mostly refused for some other reason first)."""
    sel = factories.selector()
    response = factories.response(
        case_ids=[world.cases["FR"]], selectors=[sel], request_reference="REQ-2026-1"
    )
    return {
        "POST /v1/cases": factories.case().model_dump(mode="json", exclude_none=True),
        "POST /v1/responses": response.model_dump(mode="json", exclude_none=True),
        "POST /v1/registry/platforms": {
            "slug": f"fuzz-{uuid.uuid4().hex[:8]}",
            "name": "Fuzz platform",
            "legal_rep_jurisdiction": "FR",
        },
        "PATCH /v1/registry/jurisdictions/{code}": {"name": "France", "note": "checked"},
    }


def poison_valid(schema: Any, mint: TokenMint, bodies: dict[str, dict[str, Any]]) -> set[str]:
    """Send each valid body once (it must succeed), then poisoned field by field."""
    poisoned: set[str] = set()
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label not in bodies:
            continue
        params = {"code": "FR"} if "{code}" in operation.path else {}
        case = operation.Case(
            body=bodies[operation.label], path_parameters=params, media_type="application/json"
        )
        headers = {"Authorization": f"Bearer {token_for(mint, case)}"}
        answer = case.call(headers=headers)
        assert 200 <= answer.status_code < 300, (operation.label, answer.text)
        poison(case, headers, poisoned)
    return poisoned


def exercise(case: Case, mint: TokenMint, probed: set[str], poisoned: set[str]) -> None:
    headers = {"Authorization": f"Bearer {token_for(mint, case)}"}
    case.call_and_validate(
        headers=headers,
        checks=[
            not_a_server_error,
            response_schema_conformance,
            content_type_conformance,
            cross_jurisdiction_check(mint, probed),
        ],
    )
    poison(case, headers, poisoned)


def fuzz(
    schema: Any, mint: TokenMint, probed: set[str], poisoned: set[str] | None = None
) -> list[str]:
    """Run every operation's strategy; return the labels of the operations exercised.

    `probed` collects the operations on which FR succeeded and DE was then tried, `poisoned`
    the fields that were sent unstorable text (`operation where.field`).
    """
    poisoned = set() if poisoned is None else poisoned
    labels = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @FUZZ
        def run(case: Case) -> None:
            exercise(case, mint, probed, poisoned)

        run()
        labels.append(operation.label)
    return labels


# Driven through `as_strategy` rather than `schema.parametrize`: the lazy, fixture-based
# parametrization of schemathesis 4.32 reads a private pytest attribute that pytest 9 dropped.
def test_intake_api(intake_schema: Any, mint: TokenMint, fuzz_world: World) -> None:
    probed: set[str] = set()
    poisoned: set[str] = set()
    exercised = fuzz(intake_schema, mint, probed, poisoned)
    assert {"GET /v1/cases/{case_id}", "POST /v1/inbox/{delivery_id}/ack"} <= set(exercised)
    # The isolation check must have had real objects to try, or it proved nothing.
    assert {"GET /v1/cases/{case_id}", "GET /v1/inbox/{delivery_id}"} <= probed
    # The fields of the attack run's finding 2, in bodies that are otherwise accepted.
    assert {
        "POST /v1/cases body.reference",
        "POST /v1/cases body.legal_basis",
        "POST /v1/cases body.offence_categories",
        "POST /v1/cases body.selectors.value",
        "POST /v1/responses body.disclosures.records.value",
        "POST /v1/responses body.disclosures.records.type",
        "POST /v1/responses body.request_reference",
    } <= poison_valid(intake_schema, mint, valid_bodies(fuzz_world))
    assert "GET /v1/cases query.platform" in poisoned, sorted(poisoned)


def test_registry_api(registry_schema: Any, mint: TokenMint, fuzz_world: World) -> None:
    poisoned: set[str] = set()
    exercised = fuzz(registry_schema, mint, set(), poisoned)
    assert {
        "POST /v1/registry/platforms body.name",
        "PATCH /v1/registry/jurisdictions/{code} body.name",
        "PATCH /v1/registry/jurisdictions/{code} body.note",
    } <= poison_valid(registry_schema, mint, valid_bodies(fuzz_world))
    assert {"GET /v1/registry/stream", "PATCH /v1/registry/jurisdictions/{code}"} <= set(exercised)
