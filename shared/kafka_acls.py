"""Per-member isolation on Kafka: the access plan, and its `kafka-acls` and Strimzi forms.

Nothing in the wire format stops one member from reading another's inbox topic; only broker
ACLs do. The plan is derived from the reference data (jurisdiction codes, platform slugs), so a
member added to the registry gets its grants by re-running it. Pure: no broker, no database.

Principals (names are lower case so that a Strimzi `KafkaUser` of the same name matches):
- `User:member-<cc>` reads its own inbox topic and consumer groups named `<inbox topic>.*`;
- `User:platform-<slug>` reads its own platform topic and groups named `<platform topic>.*`;
- `User:caseshare-router` (fan-out, outbox relay, reconciler: one process, one client) reads
  the responses topic with its group and writes every topic the hub publishes;
- `User:caseshare-topics` (the provisioning job) creates the hub's topics.
Read and Write imply Describe in Kafka, and nobody is granted Describe on anything else, so a
member's metadata request lists its own topic only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.events import Topic, topic_name

ROUTER = "User:caseshare-router"
TOPICS_JOB = "User:caseshare-topics"
ROUTER_GROUP = "caseshare-router"
STRIMZI_API = "kafka.strimzi.io/v1beta2"
_CODE = re.compile(r"^[A-Z]{2}$")
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]*$")


class Operation(StrEnum):
    READ = "Read"
    WRITE = "Write"
    CREATE = "Create"
    DESCRIBE = "Describe"


class Resource(StrEnum):
    TOPIC = "topic"
    GROUP = "group"


class Pattern(StrEnum):
    LITERAL = "literal"
    PREFIXED = "prefixed"


# What Kafka's authorizer lets each granted operation do besides itself.
IMPLIED = {
    Operation.READ: {Operation.DESCRIBE},
    Operation.WRITE: {Operation.DESCRIBE},
    Operation.CREATE: set[Operation](),
    Operation.DESCRIBE: set[Operation](),
}


@dataclass(frozen=True)
class Grant:
    """ALLOW `operations` on one resource (or every resource starting with `name`)."""

    principal: str
    resource: Resource
    name: str
    pattern: Pattern
    operations: tuple[Operation, ...]

    def matches(self, resource: Resource, name: str) -> bool:
        if resource is not self.resource:
            return False
        return name == self.name if self.pattern is Pattern.LITERAL else name.startswith(self.name)


@dataclass(frozen=True)
class AclPlan:
    prefix: str
    grants: tuple[Grant, ...]

    def allows(self, principal: str, operation: Operation, resource: Resource, name: str) -> bool:
        """Kafka's answer for this plan alone (allow-only, so the first match decides)."""
        return any(
            g.principal == principal
            and g.matches(resource, name)
            and any(operation == op or operation in IMPLIED[op] for op in g.operations)
            for g in self.grants
        )

    def principals(self) -> list[str]:
        return list(dict.fromkeys(g.principal for g in self.grants))


def member_principal(code: str) -> str:
    return f"User:member-{code.lower()}"


def platform_principal(slug: str) -> str:
    return f"User:platform-{slug}"


def platform_topic(prefix: str, slug: str) -> str:
    """`caseshare.platform.<slug>.v1`: orders addressed to one platform."""
    return f"{prefix}.platform.{slug}.v1"


def plan(prefix: str, *, jurisdictions: Iterable[str], platforms: Iterable[str] = ()) -> AclPlan:
    """Every grant the hub's cluster needs, for these members and platforms."""
    codes, slugs = _checked(jurisdictions, _CODE, "code"), _checked(platforms, _SLUG, "slug")
    read = (Operation.READ,)
    grants: list[Grant] = []
    for code in codes:
        inbox = topic_name(prefix, "inbox", code)
        grants += _reader(member_principal(code), inbox, read)
    for slug in slugs:
        grants += _reader(platform_principal(slug), platform_topic(prefix, slug), read)
    write = (Operation.WRITE,)
    families: tuple[Topic, ...] = ("cases", "responses", "deliveries", "dlq", "requests")
    fixed = [topic_name(prefix, f) for f in families]
    grants += [Grant(ROUTER, Resource.TOPIC, t, Pattern.LITERAL, write) for t in fixed]
    for family in ("inbox", "platform"):
        grants.append(Grant(ROUTER, Resource.TOPIC, f"{prefix}.{family}.", Pattern.PREFIXED, write))
    responses = topic_name(prefix, "responses")
    grants.append(Grant(ROUTER, Resource.TOPIC, responses, Pattern.LITERAL, read))
    grants.append(Grant(ROUTER, Resource.GROUP, ROUTER_GROUP, Pattern.LITERAL, read))
    # The router re-creates topics a broker lost (the reconciler); so does the provisioning job.
    create = (Operation.CREATE, Operation.DESCRIBE)
    for principal in (ROUTER, TOPICS_JOB):
        grants.append(Grant(principal, Resource.TOPIC, f"{prefix}.", Pattern.PREFIXED, create))
    return AclPlan(prefix, tuple(grants))


def _reader(principal: str, topic: str, read: tuple[Operation, ...]) -> list[Grant]:
    """Its topic, and consumer groups named after it: `caseshare.inbox.FR.v1.<anything>`."""
    return [
        Grant(principal, Resource.TOPIC, topic, Pattern.LITERAL, read),
        Grant(principal, Resource.GROUP, f"{topic}.", Pattern.PREFIXED, read),
    ]


def _checked(values: Iterable[str], shape: re.Pattern[str], what: str) -> list[str]:
    seen = list(dict.fromkeys(values))
    bad = [v for v in seen if not shape.match(v)]
    if bad:
        raise ValueError(f"not a valid {what}: {', '.join(bad)}")
    return seen


def kafka_acls_commands(
    acls: AclPlan, *, bootstrap: str = "$BOOTSTRAP", command_config: str = "admin.properties"
) -> list[str]:
    """One `kafka-acls.sh --add` line per grant, for Apache Kafka's own tool."""
    lines = []
    for g in acls.grants:
        ops = " ".join(f"--operation {op.value}" for op in g.operations)
        lines.append(
            f"kafka-acls.sh --bootstrap-server {bootstrap} --command-config {command_config}"
            f" --add --allow-principal {g.principal} {ops}"
            f" --{g.resource.value} {g.name} --resource-pattern-type {g.pattern.value}"
        )
    return lines


def strimzi_users(
    acls: AclPlan, *, cluster: str = "caseshare", authentication: str = "tls"
) -> list[dict[str, Any]]:
    """One Strimzi `KafkaUser` per principal, with `simple` authorization."""
    users = []
    for principal in acls.principals():
        rules = [
            {
                "resource": {
                    "type": g.resource.value,
                    "name": g.name,
                    "patternType": g.pattern.value,
                },
                "operations": [op.value for op in g.operations],
                "host": "*",
            }
            for g in acls.grants
            if g.principal == principal
        ]
        users.append(
            {
                "apiVersion": STRIMZI_API,
                "kind": "KafkaUser",
                "metadata": {
                    "name": principal.removeprefix("User:"),
                    "labels": {"strimzi.io/cluster": cluster},
                },
                "spec": {
                    "authentication": {"type": authentication},
                    "authorization": {"type": "simple", "acls": rules},
                },
            }
        )
    return users


def to_yaml(documents: Sequence[dict[str, Any]]) -> str:
    """A YAML stream of the documents (scalars as JSON strings, which YAML reads as they are)."""
    return "".join("---\n" + "\n".join(_yaml_lines(doc, 0)) + "\n" for doc in documents)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines += _yaml_lines(item, indent + 2)
            else:
                lines.append(f"{pad}{key}: {json.dumps(item)}")
    else:
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = _yaml_lines(item, indent + 2)
                lines.append(f"{pad}- {nested[0].lstrip()}")
                lines += nested[1:]
            else:
                lines.append(f"{pad}- {json.dumps(item)}")
    return lines
