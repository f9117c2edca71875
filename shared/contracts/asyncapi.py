"""The AsyncAPI 3.0 description of every topic the hub writes, built from the event models.

Member states integrate over Kafka without our code, so this document (and the JSON Schemas it
embeds) is the contract they build against. It is generated, never hand-edited, so it cannot
drift from what the producers send; `tests/integration/test_contracts_produced.py` holds the
producers to it.
"""

from __future__ import annotations

from typing import Any

from shared.contracts.schemas import (
    ROUTING,
    cloudevents_headers_schema,
    dead_letter_headers_schema,
    event_schema,
    message_headers_schema,
)
from shared.events import EVENT_TYPES, Topic, topic_name

ASYNCAPI_VERSION = "3.0.0"
CONTRACT_VERSION = "1.0.0"
KAFKA_BINDING = "0.5.0"
DEAD_LETTER = "DeadLetter"

DESCRIPTION = """\
Events of caseshare, the cross-border case-sharing broker. Every record is a CloudEvents 1.0
event in **binary content mode**: the attributes travel as Kafka headers (`ce_id`, `ce_type`,
`ce_source`, `ce_time`, `ce_subject`, `ce_schemaversion`, `content-type`, W3C `traceparent`),
the record value is the JSON payload described here.

**Delivery is at-least-once; exactly-once is by `ce_id`.** The hub re-publishes anything the
broker may have lost and every delivery not acknowledged in time, always under the same
`ce_id` (for a `ResponseDelivered`, `ce_id` is the delivery id). Consumers must treat a
`ce_id` they have already processed as a duplicate and skip it.

**Order is kept per record key**: the case id on `cases` and on the inbox topics, the response
id on `responses` and `deliveries`, the request id on `requests` and the platform topics (and
for a request's review notice on an inbox). There is no order across keys or topics.

**Legal requests** (Regulation (EU) 2023/1543) go on `requests` and on the addressee platform's
own topic, `caseshare.platform.<slug>.v1`; deadline reminders (50% and 80% of a window) and
breaches too. What the issuing authority must act on (a clarification asked for, a refusal, an
objection, a reminder or a breach) also reaches its inbox. The enforcing state of a traffic or
content order from another state finds a `RequestReviewNotified` on its inbox and may object
over REST, `POST /v1/requests/{id}/objection`.

**Disclosed data is sealed.** `ResponseDelivered.sealed_disclosures` is a JWE (compact
serialization, `alg` ECDH-ES+A256KW, `enc` A256GCM) encrypted for the recipient's registered
public key, named by `recipient_kid`; no other party, the hub's operator included, can read it.

**Verify the hub's signature.** A JWE authenticates no sender, so the sealed payload is a
JWS (ES256, `typ` caseshare-delivery+jws, JWE `cty` JWT) by a hub key published at
`/.well-known/evidence-jwks.json`; its claims name the delivery, and hold the disclosures and,
when the platform signed them, the platform's own JWS and key. Reject a delivery that fails
either signature, and do not remember its `ce_id`.

**Recall.** A `DeliveryRecalled` on your inbox withdraws a delivery; with
`deletion_required` you must delete what you received and confirm with
`POST /v1/inbox/{delivery_id}/deletion-confirmation` (`DeletionReminded` repeats the ask).

**Acknowledge every delivery** over REST, `POST /v1/inbox/{delivery_id}/ack` (OAuth 2.0 client
credentials, scope `inbox:read`). The acknowledgement is the proof of retrieval; until it
arrives the hub re-publishes the delivery with backoff and finally reports it failed.
"""

CHANNELS: dict[Topic, str] = {
    "cases": "Case registrations and status changes (metadata, never selectors).",
    "responses": (
        "Internal, hub-only: cooperation responses accepted from platforms, consumed by the"
        " router. Members have no access."
    ),
    "deliveries": (
        "The fan-out log: each delivery published, acknowledged or failed, each release"
        " decided (released, withheld, lapsed), and the jurisdictions each decision refused,"
        " with the reasons, in one event per decision (`JurisdictionExcluded`, one record per"
        " jurisdiction, is retired: records of it may still be on the topic); recalls,"
        " deletion confirmations and payloads deleted by retention;"
        " webhook endpoints registered, approved, deleted or disabled after failing."
    ),
    "dlq": (
        "Records the hub could not process, parked untouched with the reason in `dlq_*`"
        " headers so that a partition never blocks. Operators only."
    ),
    "inbox": (
        "One jurisdiction's inbox: the responses it has standing for (disclosures sealed for"
        " it alone), the deliveries held for its decision as originator, the coordination"
        " requests and answers that concern it, the hits between its cases and other"
        " jurisdictions' cases (references only once both sides consented), the legal"
        " requests it must review as enforcing state or act on as their issuer, and recall"
        " notices and deletion reminders for its deliveries."
    ),
    "requests": (
        "Legal requests issued through the hub and each step of their life: acknowledgement,"
        " clarification, refusal, preservation, answer, withdrawal, objection, deadline"
        " reminders and breaches (metadata only). The issuing authorities and the"
        " coordination desk follow it."
    ),
    "platform": (
        "One platform's topic: the legal requests addressed to it and each step of their life,"
        " deadline reminders and breaches included."
    ),
}

OPERATIONS: list[tuple[str, str, Topic, str, str]] = [
    ("receiveInbox", "receive", "inbox", "integrator", "A member state reads its own inbox."),
    ("receiveDeliveries", "receive", "deliveries", "integrator", "Follow the fan-out log."),
    ("receiveCases", "receive", "cases", "integrator", "Follow case registrations."),
    ("sendCases", "send", "cases", "hub", "The outbox relay publishes case events."),
    ("sendResponses", "send", "responses", "hub", "The outbox relay publishes responses."),
    ("routeResponses", "receive", "responses", "hub", "The router fans each response out."),
    ("sendInbox", "send", "inbox", "hub", "The router publishes deliveries and case links."),
    ("sendDeliveries", "send", "deliveries", "hub", "The hub records the fan-out log."),
    ("sendDeadLetters", "send", "dlq", "hub", "The hub parks records it cannot process."),
    ("receiveRequests", "receive", "requests", "integrator", "Follow legal requests."),
    ("sendRequests", "send", "requests", "hub", "The outbox relay publishes request events."),
    ("receivePlatform", "receive", "platform", "platform", "A platform reads its orders."),
    ("sendPlatform", "send", "platform", "hub", "The outbox relay publishes to platforms."),
]
PARAMETERS: dict[str, str] = {"inbox": "jurisdiction", "platform": "platform"}


def asyncapi_document(prefix: str = "caseshare") -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document for the topics under `prefix`."""
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "id": "urn:eu:caseshare:events",
        "info": {
            "title": "caseshare events",
            "version": CONTRACT_VERSION,
            "description": DESCRIPTION,
            "license": {"name": "EUPL-1.2", "url": "https://eupl.eu/1.2/en/"},
        },
        "defaultContentType": "application/json",
        "servers": _servers(),
        "channels": {family: _channel(prefix, family) for family in CHANNELS},
        "operations": {
            op_id: _operation(action, family, actor, summary)
            for op_id, action, family, actor, summary in OPERATIONS
        },
        "components": _components(),
    }


def _servers() -> dict[str, Any]:
    return {
        "production": {
            "host": "{bootstrap}",
            "protocol": "kafka",
            "description": (
                "The operator's Apache Kafka cluster; ACLs restrict each member to the topics it"
                " may read, its own inbox and never another member's."
            ),
            "variables": {
                "bootstrap": {
                    "default": "kafka.caseshare.eu:9092",
                    "description": "Bootstrap servers, given to each member at onboarding.",
                }
            },
        },
        "local": {
            "host": "127.0.0.1:9092",
            "protocol": "kafka",
            "description": (
                "The embedded Kafka-compatible broker of `make run`. Memory only: a restart"
                " loses every record, which the hub then re-publishes."
            ),
        },
    }


def _messages_of(family: Topic) -> list[str]:
    if family == "dlq":
        return [DEAD_LETTER]
    return [model.__name__ for model in EVENT_TYPES.values() if family in model.channels()]


def _channel(prefix: str, family: Topic) -> dict[str, Any]:
    parameter = PARAMETERS.get(family)
    if parameter is not None:
        address = f"{prefix}.{family}.{{{parameter}}}.v1"
    else:
        address = topic_name(prefix, family)
    channel: dict[str, Any] = {
        "address": address,
        "description": CHANNELS[family],
        "messages": {
            name: {"$ref": f"#/components/messages/{name}"} for name in _messages_of(family)
        },
        "bindings": {"kafka": {"bindingVersion": KAFKA_BINDING}},
    }
    if parameter is not None:
        channel["parameters"] = {parameter: {"$ref": f"#/components/parameters/{parameter}"}}
    else:
        channel["bindings"]["kafka"]["topic"] = address
    return channel


def _operation(action: str, family: Topic, actor: str, summary: str) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{family}"},
        "summary": summary,
        "tags": [{"name": actor}],
        "messages": [
            {"$ref": f"#/channels/{family}/messages/{name}"} for name in _messages_of(family)
        ],
    }


def _components() -> dict[str, Any]:
    schemas: dict[str, Any] = {
        "CloudEventsHeaders": cloudevents_headers_schema(),
        "DeadLetterHeaders": dead_letter_headers_schema(),
        "DeadLetterPayload": {
            "description": "The original record value, byte for byte; it may not be JSON."
        },
    }
    messages: dict[str, Any] = {DEAD_LETTER: _dead_letter_message()}
    common = {"$ref": "#/components/schemas/CloudEventsHeaders"}
    for ce_type, model in EVENT_TYPES.items():
        name = model.__name__
        schemas[name] = _embedded(event_schema(ce_type))
        schemas[f"{name}Headers"] = message_headers_schema(ce_type, common=common)
        messages[name] = _message(ce_type, name, model.__doc__ or name)
    return {
        "schemas": schemas,
        "messages": messages,
        "parameters": {
            "jurisdiction": {
                "description": (
                    "ISO 3166-1 alpha-2 code of the receiving jurisdiction, upper case"
                    " (e.g. FR, DE, KR)."
                ),
                "examples": ["FR", "DE", "KR"],
            },
            "platform": {
                "description": "Slug of the addressee platform, as in the platform registry.",
                "examples": ["telegram", "chirp"],
            },
        },
    }


def _embedded(schema: dict[str, Any]) -> dict[str, Any]:
    """An AsyncAPI Schema Object: the published schema, linked rather than re-identified."""
    url = schema.pop("$id")
    schema.pop("$schema")
    return {**schema, "externalDocs": {"url": url, "description": "Standalone JSON Schema"}}


def _message(ce_type: str, name: str, summary: str) -> dict[str, Any]:
    key = ROUTING[ce_type].key
    return {
        "name": name,
        "title": ce_type,
        "summary": summary,
        "contentType": "application/json",
        "headers": {"$ref": f"#/components/schemas/{name}Headers"},
        "payload": {"$ref": f"#/components/schemas/{name}"},
        "bindings": {
            "kafka": {
                "key": {
                    "type": "string",
                    "format": "uuid",
                    "description": f"The payload's `{key}`: events on one {key} keep their order.",
                },
                "bindingVersion": KAFKA_BINDING,
            }
        },
        "x-ce-type": ce_type,
    }


def _dead_letter_message() -> dict[str, Any]:
    return {
        "name": DEAD_LETTER,
        "title": "Dead letter",
        "contentType": "application/octet-stream",
        "summary": "A record parked with its original key, value and headers, plus dlq_* headers.",
        "headers": {"$ref": "#/components/schemas/DeadLetterHeaders"},
        "payload": {"$ref": "#/components/schemas/DeadLetterPayload"},
        "bindings": {
            "kafka": {
                "key": {"type": "string", "description": "The original record key."},
                "bindingVersion": KAFKA_BINDING,
            }
        },
    }
