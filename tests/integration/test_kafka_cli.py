"""`caseshare kafka acls` reads the registry's jurisdictions and platforms and prints the plan."""

from __future__ import annotations

import asyncio
import shlex

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from caseshare.cli import app
from caseshare.cli.kafka import UNREADABLE
from services.registry.reference.models import Jurisdiction, Platform
from shared.db import create_engine, create_sessionmaker, transaction
from shared.kafka_acls import member_principal, platform_principal

pytestmark = pytest.mark.integration


def acls(database_url: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["kafka", "acls", *args], env={"DATABASE_URL": database_url})
    return result.exit_code, result.stdout, result.stderr


def operations(line: list[str]) -> list[str]:
    return [line[i + 1] for i, word in enumerate(line) if word == "--operation"]


def reference(database_url: str) -> tuple[list[str], list[str]]:
    """What the registry holds, read apart from the command (which runs its own event loop)."""

    async def main() -> tuple[list[str], list[str]]:
        engine = create_engine(database_url, pool_size=1)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                codes = (await session.scalars(select(Jurisdiction.code))).all()
                slugs = (await session.scalars(select(Platform.slug))).all()
                return list(codes), list(slugs)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def test_kafka_acls_lines_grant_each_registered_member_its_own_inbox(
    database_url: str, engine: AsyncEngine
) -> None:
    codes, slugs = reference(database_url)
    assert codes
    assert slugs
    code, out, err = acls(database_url, "--topic-prefix", "hub", "--bootstrap", "k:9093")
    assert code == 0, err
    lines = [shlex.split(line) for line in out.splitlines()]
    assert all(line[:3] == ["kafka-acls.sh", "--bootstrap-server", "k:9093"] for line in lines)
    topic_reads = {
        (line[line.index("--allow-principal") + 1], line[line.index("--topic") + 1])
        for line in lines
        if "--topic" in line and operations(line) == ["Read"]
    }
    for c in codes:
        assert (member_principal(c), f"hub.inbox.{c}.v1") in topic_reads
    for s in slugs:
        assert (platform_principal(s), f"hub.platform.{s}.v1") in topic_reads
    members = {p for p, _ in topic_reads if p.startswith("User:member-")}
    assert members == {member_principal(c) for c in codes}


def test_kafka_acls_strimzi_gives_one_kafka_user_per_principal(
    database_url: str, engine: AsyncEngine
) -> None:
    codes, slugs = reference(database_url)
    code, out, err = acls(database_url, "--format", "strimzi", "--authentication", "scram-sha-512")
    assert code == 0, err
    users = {d["metadata"]["name"]: d for d in yaml.safe_load_all(out) if d}
    expected = {f"member-{c.lower()}" for c in codes} | {f"platform-{s}" for s in slugs}
    assert expected | {"caseshare-router", "caseshare-topics"} == set(users)
    fr = users["member-fr"]
    assert fr["kind"] == "KafkaUser"
    assert fr["spec"]["authentication"] == {"type": "scram-sha-512"}
    topics = [a["resource"]["name"] for a in fr["spec"]["authorization"]["acls"]]
    assert topics == ["caseshare.inbox.FR.v1", "caseshare.inbox.FR.v1."]


def test_kafka_acls_without_a_database_exits_unreadable() -> None:
    code, _, err = acls("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    assert code == UNREADABLE
    assert "cannot reach the database" in err
