"""Intake's cases API over HTTP: listing and paging, optimistic concurrency, status transitions,
lead cases, associated openers, and refusals that leave nothing behind.

The requests commit, so the module runs on a database of its own; each test that lists cases
does so as a jurisdiction no other test here opens cases for.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import event, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.intake.state import IntakeState
from services.registry.audit import service as audit
from services.registry.audit.models import AuditEntry, QueuedAuditEntry
from services.registry.cases.models import Case, CaseLink, CaseSelector
from services.registry.cases.selectors import SelectorKind
from services.registry.reference.models import Jurisdiction
from services.registry.store.models import IdempotencyKey, OutboxEvent
from shared.state import state_of
from tests import databases, factories
from tests.intake_api import Intake, running, settings_for

pytestmark = pytest.mark.integration

SUSPENDED_MEMBER = "LU"  # suspended in this module's database only
WRITTEN = (Case, CaseSelector, CaseLink, AuditEntry, QueuedAuditEntry, OutboxEvent, IdempotencyKey)


@pytest.fixture(scope="module")
async def db(database: str) -> AsyncIterator[AsyncEngine]:
    async with databases.engine_for(database) as engine:
        async with engine.begin() as conn:
            await conn.execute(
                update(Jurisdiction)
                .where(Jurisdiction.code == SUSPENDED_MEMBER)
                .values(status="suspended")
            )
        yield engine


@pytest.fixture
async def intake(database: str, db: AsyncEngine, topic_prefix: str) -> AsyncIterator[Intake]:
    async with running(settings_for(database, topic_prefix)) as app:
        yield app


async def register(intake: Intake, code: str = "FR", **overrides: Any) -> httpx.Response:
    body = factories.case(**overrides).model_dump(mode="json")
    return await intake.client.post("/v1/cases", json=body, headers=intake.authority(code))


async def opened(intake: Intake, code: str = "FR", **overrides: Any) -> dict[str, Any]:
    answer = await register(intake, code, **overrides)
    assert answer.status_code == 201, answer.text
    body: dict[str, Any] = answer.json()
    return body


async def patch(
    intake: Intake, case: dict[str, Any], status: str, *, etag: str, code: str = "FR"
) -> httpx.Response:
    headers = {**intake.authority(code), "If-Match": etag}
    return await intake.client.patch(
        f"/v1/cases/{case['id']}", json={"status": status}, headers=headers
    )


async def listed(intake: Intake, code: str, **params: Any) -> list[dict[str, Any]]:
    answer = await intake.client.get("/v1/cases", params=params, headers=intake.authority(code))
    assert answer.status_code == 200, answer.text
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


async def counts(db: AsyncEngine) -> dict[str, int]:
    async with db.connect() as conn:
        return {
            model.__tablename__: int(
                await conn.scalar(select(func.count()).select_from(model)) or 0
            )
            for model in WRITTEN
        }


def assert_problem(answer: httpx.Response, status: int, detail: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert detail in body["detail"]
    return body


async def test_the_answer_to_a_registration_is_what_reading_the_case_returns(
    intake: Intake,
) -> None:
    handle = factories.selector("@Someone_Else", SelectorKind.ACCOUNT_HANDLE)
    spelled_again = factories.selector("someone_else", SelectorKind.ACCOUNT_HANDLE)
    case = await opened(
        intake,
        "FR",
        selectors=[factories.selector(), handle, factories.selector(), spelled_again],
        offence_categories=["fraud", "extortion"],
        coordinating_jurisdiction="DE",
        emergency=True,
    )
    assert len(case["selectors"]) == 3  # one selector named twice is stored once
    read = await intake.client.get(f"/v1/cases/{case['id']}", headers=intake.authority("FR"))
    assert read.json() == case


async def test_list_filters_by_platform_and_status(intake: Intake) -> None:
    on_telegram = [await opened(intake, "NL") for _ in range(3)]
    on_chirp = await opened(intake, "NL", platform="chirp")
    assert (await patch(intake, on_telegram[0], "suspended", etag='"1"', code="NL")).is_success

    def ids(items: list[dict[str, Any]]) -> set[str]:
        return {item["id"] for item in items}

    assert ids(await listed(intake, "NL", platform="telegram")) == ids(on_telegram)
    assert ids(await listed(intake, "NL", status="suspended")) == {on_telegram[0]["id"]}
    assert ids(await listed(intake, "NL", platform="chirp", status="open")) == {on_chirp["id"]}
    assert await listed(intake, "NL", platform="pixelgram") == []


async def test_cursor_pages_cover_every_case_once_newest_first(intake: Intake) -> None:
    made = [(await opened(intake, "PT"))["id"] for _ in range(7)]
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(len(made)):
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        answer = await intake.client.get("/v1/cases", params=params, headers=intake.authority("PT"))
        page = answer.json()
        assert len(page["items"]) <= 3
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == made[::-1]


@pytest.mark.parametrize("params", [{"limit": 101}, {"limit": 0}, {"cursor": "not-a-cursor"}])
async def test_bad_page_parameters_are_422(intake: Intake, params: dict[str, Any]) -> None:
    answer = await intake.client.get("/v1/cases", params=params, headers=intake.authority("FR"))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == "application/problem+json"


async def test_if_match_guards_status_changes(intake: Intake) -> None:
    case = await opened(intake)
    read = await intake.client.get(f"/v1/cases/{case['id']}", headers=intake.authority("FR"))
    assert read.headers["etag"] == '"1"'
    moved = await patch(intake, case, "suspended", etag=read.headers["etag"])
    assert moved.status_code == 200
    assert (moved.headers["etag"], moved.json()["version"]) == ('"2"', 2)
    stale = await patch(intake, case, "open", etag='"1"')
    assert assert_problem(stale, 412, "version 2")["current_version"] == 2
    now = await intake.client.get(f"/v1/cases/{case['id']}", headers=intake.authority("FR"))
    assert (now.json()["status"], now.headers["etag"]) == ("suspended", '"2"')


@pytest.mark.parametrize(
    ("path", "refused"),
    [(["closed"], "open"), (["closed"], "suspended"), (["suspended", "closed"], "open")],
)
async def test_a_closed_case_stays_closed(intake: Intake, path: list[str], refused: str) -> None:
    case = await opened(intake)
    version = 1
    for status in path:
        assert (await patch(intake, case, status, etag=f'"{version}"')).status_code == 200
        version += 1
    answer = await patch(intake, case, refused, etag=f'"{version}"')
    assert_problem(answer, 422, f"a closed case cannot become {refused}")
    now = await intake.client.get(f"/v1/cases/{case['id']}", headers=intake.authority("FR"))
    assert (now.json()["status"], now.json()["version"]) == ("closed", version)


async def test_a_case_joins_a_lead_case_on_the_same_platform(intake: Intake) -> None:
    lead = await opened(intake, "FR")
    joined = await opened(intake, "DE", lead_case_id=lead["id"])
    assert joined["lead_case_id"] == lead["id"]


@pytest.mark.parametrize("where", ["missing", "other platform"])
async def test_a_lead_case_must_exist_on_the_same_platform(
    intake: Intake, db: AsyncEngine, where: str
) -> None:
    lead_id = uuid.uuid4() if where == "missing" else (await opened(intake, "FR"))["id"]
    before = await counts(db)
    answer = await register(intake, "DE", platform="chirp", lead_case_id=lead_id)
    assert_problem(answer, 422, "lead_case_id must name an existing case on the same platform")
    assert await counts(db) == before


@pytest.mark.parametrize(
    ("coordinator", "reason"),
    [
        (None, "KR takes part through a coordinating member state"),
        (SUSPENDED_MEMBER, f"{SUSPENDED_MEMBER} must be an active member state (it is suspended)"),
        ("US", "US must be an active member state (it is partner)"),
        ("ZZ", "unknown jurisdiction ZZ"),
    ],
)
async def test_an_associated_opener_needs_an_active_coordinating_member(
    intake: Intake, db: AsyncEngine, coordinator: str | None, reason: str
) -> None:
    before = await counts(db)
    answer = await register(intake, "KR", coordinating_jurisdiction=coordinator)
    assert_problem(answer, 422, reason)
    assert await counts(db) == before


async def test_an_associated_opener_with_an_active_coordinator_registers(intake: Intake) -> None:
    case = await opened(intake, "KR", coordinating_jurisdiction="FR")
    assert (case["opened_by"], case["coordinating_jurisdiction"]) == ("KR", "FR")


async def test_an_unknown_platform_is_422_and_writes_nothing(
    intake: Intake, db: AsyncEngine
) -> None:
    shared = factories.selector()
    await opened(intake, "FR", selectors=[shared])
    before = await counts(db)
    headers = {**intake.authority("DE"), "Idempotency-Key": "unknown-platform"}
    body = factories.case(platform="myspace", selectors=[shared]).model_dump(mode="json")
    answer = await intake.client.post("/v1/cases", json=body, headers=headers)
    assert_problem(answer, 422, "unknown platform 'myspace'")
    assert await counts(db) == before


async def test_registering_and_reading_never_hop_to_a_worker_thread(
    intake: Intake, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plain `def` dependency or route runs in anyio's thread pool: a hop per request that
    costs more than the work. Every step of the hot paths must stay on the event loop."""
    import anyio.to_thread

    hops: list[object] = []
    real = anyio.to_thread.run_sync

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counting)
    case = await opened(intake, "FR")
    headers = intake.authority("FR")
    assert (await intake.client.get(f"/v1/cases/{case['id']}", headers=headers)).status_code == 200
    assert (await intake.client.get("/v1/inbox", headers=headers)).status_code == 200
    assert hops == []


@contextmanager
def statements_sent(engine: AsyncEngine) -> Iterator[list[str]]:
    """Every statement sent on `engine`'s connections while open, each one a round trip to
    PostgreSQL: through SQLAlchemy, and straight on the driver (asyncpg's query logger sees
    raw calls, and the BEGIN and COMMIT of the driver's transactions)."""
    sent: list[str] = []
    drivers: list[Any] = []

    def through_sqlalchemy(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        sent.append(statement)

    def on_the_driver(record: Any) -> None:
        sent.append(record.query)

    def checked_out(_dbapi: Any, _record: Any, proxy: Any) -> None:
        proxy.driver_connection.add_query_logger(on_the_driver)
        drivers.append(proxy.driver_connection)

    event.listen(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
    event.listen(engine.sync_engine.pool, "checkout", checked_out)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", through_sqlalchemy)
        event.remove(engine.sync_engine.pool, "checkout", checked_out)
        for driver in drivers:
            driver.remove_query_logger(on_the_driver)


async def test_a_registration_without_a_hit_is_one_round_trip(intake: Intake) -> None:
    """References, locks, case, selectors, cross-match, outbox and audit in one statement that
    is its own transaction: no BEGIN, no COMMIT. It was eight round trips."""
    engine = state_of(intake.app, IntakeState).engine
    await opened(intake, "FR")  # the connection has prepared its statements
    with statements_sent(engine) as sent:
        case = await opened(intake, "FR")
    assert len(sent) == 1, sent
    assert "register_case(" in sent[0]
    with statements_sent(engine) as sent:  # a refusal, too, is the one statement
        assert_problem(await register(intake, "FR", platform="myspace"), 422, "unknown platform")
    assert len(sent) == 1, sent
    read = await intake.client.get(f"/v1/cases/{case['id']}", headers=intake.authority("FR"))
    assert read.json() == case


async def test_one_statement_writes_what_a_transaction_writes(
    intake: Intake, db: AsyncEngine
) -> None:
    """The same registration alone (one statement) and under an Idempotency-Key (in a
    transaction, beside the key): the same event and audit rows, in the same order, for the
    relay and the chain."""
    pending = {"coordinating_jurisdiction": "FR"}  # two events: coordination and registration
    alone = await opened(intake, "KR", **pending)
    headers = {**intake.authority("KR"), "Idempotency-Key": uuid.uuid4().hex}
    body = factories.case(**pending).model_dump(mode="json")
    answer = await intake.client.post("/v1/cases", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    async with AsyncSession(db) as session, session.begin():
        await audit.drain(session)

    async def written(case: dict[str, Any]) -> str:
        """The case's outbox rows and chained audit entries, its own values blanked."""
        async with db.connect() as conn:
            events = await conn.execute(
                select(
                    OutboxEvent.topic,
                    OutboxEvent.key,
                    OutboxEvent.event_type,
                    OutboxEvent.subject,
                    OutboxEvent.payload,
                )
                .where(OutboxEvent.key == case["id"])
                .order_by(OutboxEvent.id)
            )
            entries = await conn.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.details)
                .where(AuditEntry.subject_id == case["id"])
                .order_by(AuditEntry.seq)
            )
            rows = [list(row) for row in events] + [list(row) for row in entries]
        assert [row[1] for row in rows[2:]] == ["case.registered"]
        assert rows[2][2].pop("token_id")
        text = orjson.dumps(rows, option=orjson.OPT_SORT_KEYS).decode()
        for own in ("id", "reference", "created_at"):
            text = text.replace(case[own], own.upper())
        return text

    mine = await written(alone)
    assert "coordination.requested" in mine.split("case.registered")[0]
    assert mine == await written(answer.json())
