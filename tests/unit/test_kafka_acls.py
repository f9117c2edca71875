"""The Kafka access plan means what it says, for every seeded jurisdiction and platform, and its
two renderings (`kafka-acls` lines, Strimzi `KafkaUser` resources) grant exactly the plan."""

from __future__ import annotations

import itertools
import shlex
from typing import Any

import pytest
import yaml

from services.registry.reference.loader import load_reference
from shared.events import topic_name
from shared.kafka_acls import (
    ROUTER,
    TOPICS_JOB,
    AclPlan,
    Grant,
    Operation,
    Pattern,
    Resource,
    kafka_acls_commands,
    member_principal,
    plan,
    platform_principal,
    platform_topic,
    strimzi_users,
    to_yaml,
)

PREFIX = "caseshare"
REFERENCE = load_reference()
CODES = [j.code for j in REFERENCE.jurisdictions]
SLUGS = [p.slug for p in REFERENCE.platforms]
READ, WRITE, DESCRIBE, CREATE = (
    Operation.READ,
    Operation.WRITE,
    Operation.DESCRIBE,
    Operation.CREATE,
)
TOPIC, GROUP = Resource.TOPIC, Resource.GROUP


@pytest.fixture(scope="module")
def acls() -> AclPlan:
    return plan(PREFIX, jurisdictions=CODES, platforms=SLUGS)


def inbox(code: str) -> str:
    return topic_name(PREFIX, "inbox", code)


def test_the_seed_has_members_and_platforms_to_check() -> None:
    assert len(CODES) > 20
    assert {"FR", "DE", "KR"} <= set(CODES)
    assert SLUGS


@pytest.mark.parametrize("code", CODES)
def test_every_member_reads_its_own_inbox_with_its_own_groups(acls: AclPlan, code: str) -> None:
    me = member_principal(code)
    assert acls.allows(me, READ, TOPIC, inbox(code))
    assert acls.allows(me, DESCRIBE, TOPIC, inbox(code))
    assert acls.allows(me, READ, GROUP, f"{inbox(code)}.integration")


@pytest.mark.parametrize("code", CODES)
def test_no_member_reads_or_sees_another_members_inbox(acls: AclPlan, code: str) -> None:
    me = member_principal(code)
    for other in (c for c in CODES if c != code):
        for op in (READ, DESCRIBE, WRITE):
            assert not acls.allows(me, op, TOPIC, inbox(other)), (code, other, op)
        assert not acls.allows(me, READ, GROUP, f"{inbox(other)}.integration")
    hub_topics = [topic_name(PREFIX, f) for f in ("cases", "responses", "deliveries", "dlq")]
    for topic in [*hub_topics, *(platform_topic(PREFIX, s) for s in SLUGS)]:
        assert not acls.allows(me, DESCRIBE, TOPIC, topic), (code, topic)
    assert not acls.allows(me, WRITE, TOPIC, inbox(code))
    assert not acls.allows(me, CREATE, TOPIC, inbox(code))
    assert not acls.allows(me, READ, GROUP, "caseshare-router")


def test_each_platform_reads_only_its_own_orders(acls: AclPlan) -> None:
    for slug, other in itertools.permutations(SLUGS, 2):
        assert acls.allows(platform_principal(slug), READ, TOPIC, platform_topic(PREFIX, slug))
        assert not acls.allows(
            platform_principal(slug), DESCRIBE, TOPIC, platform_topic(PREFIX, other)
        )
        assert not acls.allows(platform_principal(slug), READ, TOPIC, inbox("FR"))


def test_the_router_writes_every_hub_topic_and_reads_only_responses(acls: AclPlan) -> None:
    for code in CODES:
        assert acls.allows(ROUTER, WRITE, TOPIC, inbox(code))
        assert not acls.allows(ROUTER, READ, TOPIC, inbox(code))
    for family in ("cases", "responses", "deliveries", "dlq"):
        assert acls.allows(ROUTER, WRITE, TOPIC, topic_name(PREFIX, family))
    assert acls.allows(ROUTER, WRITE, TOPIC, platform_topic(PREFIX, SLUGS[0]))
    assert acls.allows(ROUTER, READ, TOPIC, topic_name(PREFIX, "responses"))
    assert acls.allows(ROUTER, READ, GROUP, "caseshare-router")
    assert not acls.allows(ROUTER, READ, TOPIC, topic_name(PREFIX, "cases"))
    assert not acls.allows(ROUTER, WRITE, TOPIC, "other-app.inbox.FR.v1")


def test_the_topics_job_creates_but_reads_and_writes_nothing(acls: AclPlan) -> None:
    assert acls.allows(TOPICS_JOB, CREATE, TOPIC, inbox("FR"))
    assert not acls.allows(TOPICS_JOB, READ, TOPIC, inbox("FR"))
    assert not acls.allows(TOPICS_JOB, WRITE, TOPIC, inbox("FR"))
    assert not acls.allows(TOPICS_JOB, CREATE, TOPIC, "other-app.cases.v1")


def test_the_prefix_keeps_two_hubs_on_one_cluster_apart() -> None:
    staging = plan("staging", jurisdictions=["FR"])
    assert staging.allows(member_principal("FR"), READ, TOPIC, "staging.inbox.FR.v1")
    assert not staging.allows(member_principal("FR"), READ, TOPIC, inbox("FR"))
    assert not staging.allows(ROUTER, WRITE, TOPIC, inbox("FR"))


@pytest.mark.parametrize(
    ("codes", "slugs"), [(["fr"], []), (["FRA"], []), (["FR"], ["Tele gram"]), (["*"], [])]
)
def test_malformed_codes_and_slugs_are_refused(codes: list[str], slugs: list[str]) -> None:
    with pytest.raises(ValueError, match="not a valid"):
        plan(PREFIX, jurisdictions=codes, platforms=slugs)


def parse_command(line: str) -> Grant:
    """Read a `kafka-acls.sh --add` line back into the grant it would create."""
    words = shlex.split(line)
    assert words[0] == "kafka-acls.sh"
    assert "--add" in words
    value = {words[i]: words[i + 1] for i in range(1, len(words) - 1) if words[i].startswith("--")}
    resource = next(r for r in Resource if f"--{r.value}" in value)
    ops = [Operation(words[i + 1]) for i, w in enumerate(words) if w == "--operation"]
    return Grant(
        value["--allow-principal"],
        resource,
        value[f"--{resource.value}"],
        Pattern(value["--resource-pattern-type"]),
        tuple(ops),
    )


def test_the_kafka_acls_lines_grant_exactly_the_plan(acls: AclPlan) -> None:
    lines = kafka_acls_commands(acls, bootstrap="kafka-1:9093")
    assert [parse_command(line) for line in lines] == list(acls.grants)
    assert all("--bootstrap-server kafka-1:9093" in line for line in lines)


def grants_of(user: dict[str, Any]) -> list[Grant]:
    principal = "User:" + user["metadata"]["name"]
    return [
        Grant(
            principal,
            Resource(rule["resource"]["type"]),
            rule["resource"]["name"],
            Pattern(rule["resource"]["patternType"]),
            tuple(Operation(op) for op in rule["operations"]),
        )
        for rule in user["spec"]["authorization"]["acls"]
    ]


def test_the_strimzi_users_grant_exactly_the_plan(acls: AclPlan) -> None:
    documents = list(yaml.safe_load_all(to_yaml(strimzi_users(acls, cluster="hub"))))
    assert len(documents) == len(CODES) + len(SLUGS) + 2
    for doc in documents:
        assert (doc["apiVersion"], doc["kind"]) == ("kafka.strimzi.io/v1beta2", "KafkaUser")
        assert doc["metadata"]["labels"] == {"strimzi.io/cluster": "hub"}
        assert doc["spec"]["authentication"] == {"type": "tls"}
        assert doc["spec"]["authorization"]["type"] == "simple"
        assert all(rule["host"] == "*" for rule in doc["spec"]["authorization"]["acls"])
    parsed = [g for doc in documents for g in grants_of(doc)]
    assert sorted(parsed, key=repr) == sorted(acls.grants, key=repr)
    names = [doc["metadata"]["name"] for doc in documents]
    assert "member-fr" in names
    assert all(name == name.lower() for name in names)  # Kubernetes object names
