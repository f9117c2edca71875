"""Tampering with the audit log in PostgreSQL itself is caught, and pinpointed, by every verifier.

Each test builds a short chain through the real use cases on a database of its own, then acts
as the database superuser: the append-only trigger refuses edits until it is disabled, after
which an edited or deleted entry must be named by seq by the registry's verifier (walking in
small batches and in one), by GET /v1/registry/audit/verify and by `caseshare audit verify`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from caseshare.cli import app as cli
from caseshare.stack.embedded import EmbeddedPostgres, free_port
from services.registry.audit import service as audit
from services.registry.cases import service as cases
from services.registry.cases.rules import CaseStatus
from services.registry.context import Actor, Context
from services.registry.responses import service as responses
from shared.audit_chain import VerifyResult
from shared.db import create_sessionmaker, transaction
from tests import databases, factories, registry_api

pytestmark = pytest.mark.integration

FR = Actor(client_id="authority-fr", jurisdiction="FR")
DE = Actor(client_id="authority-de", jurisdiction="DE")
ENTRIES = 5  # FR registered, link found, DE registered, response received, FR suspended
SMALL_BATCH = 2  # so the chain spans three batches and breaks land on their edges


@dataclass(frozen=True)
class Chain:
    url: str
    database: str
    topic_prefix: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    checked: int
    first_broken_seq: int | None


@pytest.fixture
async def chain(postgres: EmbeddedPostgres, ctx: Context) -> Chain:
    url = await databases.migrated(postgres)
    async with databases.engine_for(url) as engine:
        await _build(engine, ctx)
    return Chain(url=url, database=url.rsplit("/", 1)[1], topic_prefix=ctx.topic_prefix)


@pytest.fixture
async def chain_engine(chain: Chain) -> AsyncIterator[AsyncEngine]:
    async with databases.engine_for(chain.url) as eng:
        yield eng


async def _build(engine: AsyncEngine, ctx: Context) -> None:
    sm = create_sessionmaker(engine)
    shared = factories.selector()
    async with transaction(sm) as session:
        fr = await cases.register(
            session, actor=FR, data=factories.case(selectors=[shared]), ctx=ctx
        )
    async with transaction(sm) as session:
        await cases.register(session, actor=DE, data=factories.case(selectors=[shared]), ctx=ctx)
    async with transaction(sm) as session:
        answer = factories.response(case_ids=[fr.id], disclosures=[factories.disclosure(shared)])
        await responses.submit(
            session, platform="telegram", client_id="platform-telegram", data=answer, ctx=ctx
        )
    async with transaction(sm) as session:
        await cases.change_status(
            session,
            actor=FR,
            case_id=fr.id,
            status=CaseStatus.SUSPENDED,
            expected_version=1,
            ctx=ctx,
        )
    async with transaction(sm) as session:
        assert await audit.drain(session) == ENTRIES


def as_superuser(postgres: EmbeddedPostgres, chain: Chain, sql: str) -> None:
    """Run `sql` with the append-only trigger disabled, the way a rogue operator would."""
    postgres.psql(
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update;"
        f"{sql};"
        "ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update",
        database=chain.database,
    )


async def service_verdicts(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> list[VerifyResult]:
    """The registry's verifier, walking in one batch and in batches of `SMALL_BATCH`."""
    results = []
    async with databases.engine_for(chain.url) as engine:
        for batch in (audit.VERIFY_BATCH, SMALL_BATCH):
            with monkeypatch.context() as patch:
                patch.setattr(audit, "VERIFY_BATCH", batch)
                async with transaction(create_sessionmaker(engine)) as session:
                    results.append(await audit.verify(session))
    return results


async def http_verdict(chain: Chain) -> dict[str, object]:
    settings = registry_api.settings_for(chain.url, chain.topic_prefix)
    async with registry_api.running(settings) as registry:
        answer = await registry.client.get(
            "/v1/registry/audit/verify", headers=registry.issuer.auth(registry_api.COORDINATOR)
        )
    assert answer.status_code == 200
    body: dict[str, object] = answer.json()
    return body


async def cli_verdict(url: str) -> tuple[int, str]:
    runner = CliRunner()
    env = {"DATABASE_URL": url}
    result = await asyncio.to_thread(runner.invoke, cli, ["audit", "verify"], env=env)
    return result.exit_code, result.output


async def assert_broken_at(
    chain: Chain, seq: int, problem: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every verifier reports `seq` as the first broken entry, for the reason `problem`."""
    for result in await service_verdicts(chain, monkeypatch):
        assert (result.ok, result.first_broken_seq, result.checked) == (False, seq, seq - 1)
        assert result.problem is not None
        assert problem in result.problem
    body = await http_verdict(chain)
    assert (body["ok"], body["first_broken_seq"], body["checked"]) == (False, seq, seq - 1)
    assert problem in str(body["problem"])
    code, output = await cli_verdict(chain.url)
    assert code == 1
    assert f"BROKEN at seq {seq}:" in output
    assert problem in output


async def assert_intact(chain: Chain, monkeypatch: pytest.MonkeyPatch) -> None:
    verdicts = await service_verdicts(chain, monkeypatch)
    entries = verdicts[0].checked
    assert entries >= ENTRIES
    for result in verdicts:
        assert (result.ok, result.checked, result.last_seq) == (True, entries, entries)
    body = await http_verdict(chain)
    # verifying over HTTP is an audited access: its own entry is chained before the walk
    assert (body["ok"], body["checked"]) == (True, entries + 1)
    code, output = await cli_verdict(chain.url)
    assert code == 0
    assert f"OK: {entries + 1} entries" in output


async def test_an_untouched_chain_verifies_everywhere(
    chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    await assert_intact(chain, monkeypatch)


@pytest.mark.parametrize("seq", [1, SMALL_BATCH + 1, ENTRIES])
async def test_an_edited_entry_is_pinpointed_and_a_restored_one_passes(
    postgres: EmbeddedPostgres, chain: Chain, monkeypatch: pytest.MonkeyPatch, seq: int
) -> None:
    where = f"WHERE seq = {seq}"
    original = postgres.psql(
        f"SELECT details::text FROM audit_log {where}", database=chain.database
    )
    as_superuser(
        postgres, chain, f'UPDATE audit_log SET details = details || \'{{"by": "x"}}\' {where}'
    )
    await assert_broken_at(chain, seq, "hash mismatch (entry edited)", monkeypatch)
    restore = original.strip().replace("'", "''")
    as_superuser(postgres, chain, f"UPDATE audit_log SET details = '{restore}'::jsonb {where}")
    await assert_intact(chain, monkeypatch)


@pytest.mark.parametrize("seq", [1, SMALL_BATCH, SMALL_BATCH + 1])
async def test_a_deleted_entry_is_pinpointed_and_a_restored_one_passes(
    postgres: EmbeddedPostgres, chain: Chain, monkeypatch: pytest.MonkeyPatch, seq: int
) -> None:
    as_superuser(
        postgres,
        chain,
        f"CREATE TABLE kept AS SELECT * FROM audit_log WHERE seq = {seq};"
        f"DELETE FROM audit_log WHERE seq = {seq}",
    )
    await assert_broken_at(chain, seq, "sequence gap", monkeypatch)
    postgres.psql("INSERT INTO audit_log SELECT * FROM kept", database=chain.database)
    await assert_intact(chain, monkeypatch)


async def execute(engine: AsyncEngine, statement: str) -> None:
    async with engine.begin() as conn:
        await conn.execute(text(statement))


@pytest.mark.parametrize(
    ("statement", "operation"),
    [
        ("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 2", "UPDATE"),
        ("DELETE FROM audit_log WHERE seq = 2", "DELETE"),
        ("TRUNCATE audit_log", "TRUNCATE"),
    ],
)
async def test_the_trigger_refuses_changes_even_to_the_superuser(
    chain: Chain,
    chain_engine: AsyncEngine,
    monkeypatch: pytest.MonkeyPatch,
    statement: str,
    operation: str,
) -> None:
    with pytest.raises(DBAPIError, match=rf"append-only \({operation} refused\)"):
        await execute(chain_engine, statement)
    for result in await service_verdicts(chain, monkeypatch):
        assert (result.ok, result.checked) == (True, ENTRIES)


async def test_an_unreachable_database_exits_2() -> None:
    closed = f"postgresql+asyncpg://caseshare@127.0.0.1:{free_port()}/caseshare"
    code, output = await cli_verdict(closed)
    assert code == 2
    assert "cannot reach the database" in output


async def test_an_unmigrated_database_exits_2(postgres: EmbeddedPostgres) -> None:
    code, output = await cli_verdict(databases.create_empty(postgres, prefix="bare"))
    assert code == 2
    assert "is the schema migrated?" in output


async def anchored_verdicts(
    chain: Chain, anchor: audit.Anchor
) -> tuple[VerifyResult, dict[str, object], tuple[int, str]]:
    """The same anchored walk by the registry's verifier, over HTTP and from the CLI."""
    async with (
        databases.engine_for(chain.url) as engine,
        transaction(create_sessionmaker(engine)) as session,
    ):
        service = await audit.verify(session, anchor=anchor)
    settings = registry_api.settings_for(chain.url, chain.topic_prefix)
    async with registry_api.running(settings) as registry:
        answer = await registry.client.get(
            "/v1/registry/audit/verify",
            params={"anchor_seq": anchor.seq, "anchor_hash": anchor.hash},
            headers=registry.issuer.auth(registry_api.COORDINATOR),
        )
    assert answer.status_code == 200
    runner = CliRunner()
    args = ["audit", "verify", "--anchor-seq", str(anchor.seq), "--anchor-hash", anchor.hash]
    result = await asyncio.to_thread(runner.invoke, cli, args, env={"DATABASE_URL": chain.url})
    return service, answer.json(), (result.exit_code, result.output)


async def head_of(chain: Chain) -> audit.Anchor:
    """An anchor as an operator takes it: the head a verify reports, here from the CLI."""
    code, output = await cli_verdict(chain.url)
    assert code == 0
    _, seq, _, digest = output.splitlines()[-1].removeprefix("head: ").split()
    return audit.Anchor(seq=int(seq), hash=digest)


async def test_a_deleted_tail_passes_plain_chaining_but_not_an_anchor(
    postgres: EmbeddedPostgres, chain: Chain, monkeypatch: pytest.MonkeyPatch
) -> None:
    anchor = await head_of(chain)
    service, body, (code, output) = await anchored_verdicts(chain, anchor)
    assert (service.ok, body["ok"], body["anchored"], code) == (True, True, True, 0)
    assert f"anchor at seq {anchor.seq} matches" in output
    as_superuser(postgres, chain, f"DELETE FROM audit_log WHERE seq >= {anchor.seq - 1}")
    for plain in await service_verdicts(chain, monkeypatch):
        assert plain.ok  # what chaining alone cannot see
    service, body, (code, output) = await anchored_verdicts(chain, anchor)
    assert (service.ok, service.first_broken_seq) == (False, anchor.seq - 1)
    assert service.problem is not None
    assert "tail deleted" in service.problem
    # the HTTP walk is an audited access: its own entry is chained first, at anchor.seq - 1,
    # so from then on the log is one entry short of the anchor
    assert (body["ok"], body["first_broken_seq"]) == (False, anchor.seq)
    assert "tail deleted" in str(body["problem"])
    assert code == 1
    assert f"BROKEN at seq {anchor.seq}: log truncated" in output


async def test_an_anchor_that_does_not_match_is_reported_as_rewritten_history(
    chain: Chain,
) -> None:
    anchor = await head_of(chain)
    forged = audit.Anchor(seq=anchor.seq - 2, hash="f" * 64)
    service, body, (code, output) = await anchored_verdicts(chain, forged)
    assert (service.ok, service.first_broken_seq, service.checked) == (
        False,
        forged.seq,
        forged.seq - 1,
    )
    assert (body["ok"], body["first_broken_seq"]) == (False, forged.seq)
    assert "history rewritten" in str(body["problem"])
    assert code == 1
    assert "history rewritten" in output


async def test_an_anchor_is_refused_unless_complete_and_well_formed(chain: Chain) -> None:
    settings = registry_api.settings_for(chain.url, chain.topic_prefix)
    async with registry_api.running(settings) as registry:
        auth = registry.issuer.auth(registry_api.COORDINATOR)
        for params in ({"anchor_seq": 3}, {"anchor_seq": 3, "anchor_hash": "abc"}):
            answer = await registry.client.get(
                "/v1/registry/audit/verify", params=params, headers=auth
            )
            assert answer.status_code in (400, 422)
            assert answer.headers["content-type"].startswith("application/problem+json")
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke,
        cli,
        ["audit", "verify", "--anchor-seq", "3"],
        env={"DATABASE_URL": chain.url},
    )
    assert result.exit_code == 2
    assert "go together" in result.output
