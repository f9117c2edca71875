"""JSON Schemas for every event and its CloudEvents headers, derived from `shared.events`.

The pydantic models stay the single source of truth; this module only renders them for people
and tools outside Python (integrators, the AsyncAPI document, the contract tests), and records
the parts of the contract the models cannot express: which payload field is the Kafka key and
which one the `ce_subject` names.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from shared.events import EVENT_TYPES, REQUEST_EVENTS, RETIRED_EVENTS, Event

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_BASE = "https://caseshare.eu/schemas/"
SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

# ECMA-262 compatible, so the same patterns work in the published schemas and in Python.
TRACEPARENT_PATTERN = r"^(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$"
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
_RFC3339 = re.compile(RFC3339_PATTERN)


@dataclass(frozen=True)
class Routing:
    """Which payload field is the record key (per-key order) and which one `ce_subject` names."""

    key: str
    subject: str


ROUTING: dict[str, Routing] = {
    "eu.caseshare.case.registered.v1": Routing(key="case_id", subject="case_id"),
    "eu.caseshare.case.status-changed.v1": Routing(key="case_id", subject="case_id"),
    "eu.caseshare.response.received.v1": Routing(key="response_id", subject="response_id"),
    "eu.caseshare.response.delivered.v1": Routing(key="case_id", subject="case_id"),
    "eu.caseshare.case.link-found.v2": Routing(key="link_id", subject="link_id"),
    "eu.caseshare.case.link-disclosed.v1": Routing(key="link_id", subject="link_id"),
    "eu.caseshare.coordination.requested.v1": Routing(key="case_id", subject="case_id"),
    "eu.caseshare.coordination.decided.v1": Routing(key="case_id", subject="case_id"),
    "eu.caseshare.release.requested.v1": Routing(key="response_id", subject="release_id"),
    "eu.caseshare.release.decided.v1": Routing(key="response_id", subject="release_id"),
    "eu.caseshare.delivery.published.v1": Routing(key="response_id", subject="delivery_id"),
    "eu.caseshare.delivery.acknowledged.v1": Routing(key="response_id", subject="delivery_id"),
    "eu.caseshare.delivery.excluded.v1": Routing(key="response_id", subject="exclusion_id"),
    "eu.caseshare.delivery.jurisdictions-excluded.v1": Routing(
        key="response_id", subject="response_id"
    ),
    "eu.caseshare.delivery.failed.v1": Routing(key="response_id", subject="delivery_id"),
    "eu.caseshare.webhook.endpoint-changed.v1": Routing(key="endpoint_id", subject="endpoint_id"),
    "eu.caseshare.webhook.endpoint-disabled.v1": Routing(key="endpoint_id", subject="endpoint_id"),
    # a request's events keep their order on the request id, on every channel they travel
    **{model.TYPE: Routing(key="request_id", subject="request_id") for model in REQUEST_EVENTS},
    "eu.caseshare.response.recalled.v1": Routing(key="response_id", subject="response_id"),
    "eu.caseshare.delivery.recalled.v1": Routing(key="case_id", subject="delivery_id"),
    "eu.caseshare.delivery.deletion-reminded.v1": Routing(key="case_id", subject="delivery_id"),
    "eu.caseshare.delivery.deletion-confirmed.v1": Routing(
        key="response_id", subject="delivery_id"
    ),
    "eu.caseshare.delivery.payload-deleted.v1": Routing(key="response_id", subject="delivery_id"),
}


def schema_id(ce_type: str) -> str:
    """Where the schema of `ce_type` is published; also its `$id`."""
    return f"{SCHEMA_BASE}{ce_type}.json"


def is_rfc3339(value: object) -> bool:
    """RFC 3339 `date-time`: the shape (offset required) and a real calendar instant."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return False
    normalised = value.upper().replace("Z", "+00:00")
    if normalised[17:19] == "60":  # a leap second is valid RFC 3339, unknown to datetime
        normalised = normalised[:17] + "59" + normalised[19:]
    try:
        datetime.fromisoformat(normalised)
    except ValueError:
        return False
    return True


@cache
def _event_schema(ce_type: str) -> dict[str, Any]:
    model: type[Event] = EVENT_TYPES[ce_type]
    body = _inlined(model.model_json_schema(mode="serialization"))
    return {
        "$schema": DIALECT,
        "$id": schema_id(ce_type),
        **body,
        "title": model.__name__,
        "x-ce-type": ce_type,
        "x-ce-schemaversion": model.SCHEMA_VERSION,
        "x-topic-family": model.TOPIC,
        "x-topic-families": list(model.channels()),
        "x-kafka-key": ROUTING[ce_type].key,
        "x-ce-subject": ROUTING[ce_type].subject,
        # retired: still valid on the topic (records already there), never emitted again
        "deprecated": model in RETIRED_EVENTS,
    }


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its nested models (`$defs`) written in place: the same schema is
    embedded in the AsyncAPI document, where a `#/$defs/...` reference would point at the
    document's root instead. Event payloads nest no model in itself, so this terminates."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(copy.deepcopy(defs[ref.removeprefix("#/$defs/")]))
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    inlined: dict[str, Any] = walk(schema)
    return inlined


def event_schema(ce_type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of one event payload; KeyError for an unknown type."""
    return copy.deepcopy(_event_schema(ce_type))


def event_schemas() -> dict[str, dict[str, Any]]:
    """Every event payload's JSON Schema, by CloudEvents type."""
    return {ce_type: event_schema(ce_type) for ce_type in EVENT_TYPES}


def cloudevents_headers_schema() -> dict[str, Any]:
    """The Kafka headers of a CloudEvents binary-mode record, as every producer writes them."""
    return {
        "type": "object",
        "title": "CloudEventsHeaders",
        "description": (
            "CloudEvents 1.0, Kafka protocol binding, binary content mode: the attributes are"
            " record headers (UTF-8), the record value is the event payload."
        ),
        "required": [
            "ce_specversion",
            "ce_id",
            "ce_type",
            "ce_source",
            "ce_time",
            "ce_schemaversion",
            "content-type",
            "traceparent",
        ],
        "properties": {
            "ce_specversion": {"const": SPECVERSION},
            "ce_id": {
                "type": "string",
                "minLength": 1,
                "description": "Unique per event; a redelivery carries the same id: deduplicate"
                " on it.",
            },
            "ce_type": {"type": "string", "enum": sorted(EVENT_TYPES)},
            "ce_source": {"type": "string", "minLength": 1},
            "ce_time": {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN},
            "ce_schemaversion": {"type": "string", "pattern": "^[1-9][0-9]*$"},
            "ce_subject": {"type": "string", "minLength": 1},
            "content-type": {"const": CONTENT_TYPE},
            "traceparent": {
                "type": "string",
                "pattern": TRACEPARENT_PATTERN,
                "description": "W3C Trace Context.",
            },
        },
    }


def message_headers_schema(ce_type: str, *, common: dict[str, Any] | None = None) -> dict[str, Any]:
    """The headers of one event type: the common ones, pinned to its type and version.

    `common` replaces the inlined common schema (the AsyncAPI document passes a `$ref`).
    """
    model = EVENT_TYPES[ce_type]
    subject = ROUTING[ce_type].subject
    return {
        "type": "object",
        "allOf": [
            common if common is not None else cloudevents_headers_schema(),
            {
                "required": ["ce_subject"],
                "properties": {
                    "ce_type": {"const": ce_type},
                    "ce_schemaversion": {"const": str(model.SCHEMA_VERSION)},
                    "ce_subject": {"description": f"The payload's `{subject}`."},
                },
            },
        ],
    }


def dead_letter_headers_schema() -> dict[str, Any]:
    """A dead-lettered record keeps its original headers and gains the reason it was parked."""
    digits = {"type": "string", "pattern": "^[0-9]+$"}
    return {
        "type": "object",
        "title": "DeadLetterHeaders",
        "required": [
            "dlq_error",
            "dlq_reason",
            "dlq_topic",
            "dlq_partition",
            "dlq_offset",
            "dlq_time",
        ],
        "properties": {
            "dlq_error": {"type": "string", "minLength": 1, "description": "Exception class."},
            "dlq_reason": {"type": "string", "maxLength": 500},
            "dlq_topic": {"type": "string", "minLength": 1},
            "dlq_partition": digits,
            "dlq_offset": digits,
            "dlq_time": {"type": "string", "format": "date-time", "pattern": RFC3339_PATTERN},
        },
    }
