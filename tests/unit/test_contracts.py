"""The published contract: schemas for every event, a coherent AsyncAPI document, the HTTP
routes that serve both, and a record validator that refuses each kind of drift."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import httpx
import orjson
import pytest
from fastapi import FastAPI
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from pydantic import BaseModel

from shared.contracts import (
    ROUTING,
    ContractViolation,
    asyncapi_document,
    asyncapi_router,
    event_schemas,
    schema_id,
    validate_dead_letter,
    validate_record,
)
from shared.contracts.__main__ import main
from shared.contracts.check import check_asyncapi, resolve
from shared.contracts.schemas import is_rfc3339
from shared.events import EVENT_TYPES, CaseRegistered, Event
from shared.kafka import encode
from shared.problems import install_problem_handlers

Headers = list[tuple[str, bytes]]
M = TypeVar("M", bound=BaseModel)
SAMPLES: dict[Any, Callable[[], Any]] = {
    uuid.UUID: uuid.uuid4,
    datetime: lambda: datetime.now(UTC),
    str: lambda: "x",
    bool: lambda: True,
    int: lambda: 1,
}


def sample(model: type[M]) -> M:
    """An instance with every field set (optional ones too, nested models too), so every
    branch is exercised."""
    values = {}
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if get_origin(annotation) is list:
            item = get_args(annotation)[0]
            nested = isinstance(item, type) and issubclass(item, BaseModel)
            values[name] = [sample(item) if nested else SAMPLES[item]()]
            continue
        kinds = getattr(annotation, "__args__", (annotation,))
        values[name] = SAMPLES[next(k for k in kinds if k is not type(None))]()
    return model(**values)


def record(event: Event) -> tuple[bytes, Headers, bytes]:
    """Value, headers and key as the producers write them."""
    route = ROUTING[event.TYPE]
    subject = str(getattr(event, route.subject))
    value, headers = encode(event, ce_id=uuid.uuid4(), subject=subject)
    return value, headers, str(getattr(event, route.key)).encode()


# schemas


def test_every_event_type_has_a_valid_schema() -> None:
    schemas = event_schemas()
    assert set(schemas) == set(EVENT_TYPES)
    for ce_type, schema in schemas.items():
        Draft202012Validator.check_schema(schema)
        model = EVENT_TYPES[ce_type]
        assert schema["$id"] == schema_id(ce_type) == f"https://caseshare.eu/schemas/{ce_type}.json"
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert (schema["title"], schema["x-ce-type"]) == (model.__name__, ce_type)
        assert schema["additionalProperties"] is False
        assert set(schema["required"]) == set(model.model_fields)


def test_routing_names_real_fields_of_every_event() -> None:
    assert set(ROUTING) == set(EVENT_TYPES)
    for ce_type, route in ROUTING.items():
        fields = EVENT_TYPES[ce_type].model_fields
        assert route.key in fields, ce_type
        assert route.subject in fields, ce_type


@pytest.mark.parametrize("model", list(EVENT_TYPES.values()), ids=lambda m: m.__name__)
def test_what_the_model_serialises_is_a_valid_record(model: type[Event]) -> None:
    value, headers, key = record(sample(model))
    validate_record(value, headers, key=key)


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("2026-03-01T10:00:00Z", True),
        ("2026-03-01t10:00:00.123456789+01:00", True),
        ("2026-06-30T23:59:60Z", True),
        ("2026-03-01T10:00:00", False),
        ("2026-02-30T10:00:00Z", False),
        ("2026-03-01 10:00:00Z", False),
        (20260301, False),
    ],
)
def test_rfc3339(text: object, valid: bool) -> None:
    assert is_rfc3339(text) is valid


# the AsyncAPI document


def test_asyncapi_document_passes_structural_checks() -> None:
    doc = asyncapi_document()
    assert check_asyncapi(doc) == []
    assert json.loads(json.dumps(doc)) == doc
    assert doc["asyncapi"] == "3.0.0"
    assert {s["host"] for s in doc["servers"].values()} >= {"127.0.0.1:9092"}
    assert {s["protocol"] for s in doc["servers"].values()} == {"kafka"}
    text = doc["info"]["description"]
    for needle in ("ce_id", "ECDH-ES+A256KW", "A256GCM", "POST /v1/inbox/{delivery_id}/ack"):
        assert needle in text


def test_asyncapi_channels_cover_every_topic_family_and_event() -> None:
    doc = asyncapi_document("t42")
    addresses = {c["address"] for c in doc["channels"].values()}
    assert addresses == {
        "t42.cases.v1",
        "t42.responses.v1",
        "t42.deliveries.v1",
        "t42.dlq.v1",
        "t42.inbox.{jurisdiction}.v1",
        "t42.requests.v1",
        "t42.platform.{platform}.v1",
    }
    assert "jurisdiction" in doc["channels"]["inbox"]["parameters"]
    assert "platform" in doc["channels"]["platform"]["parameters"]
    for model in EVENT_TYPES.values():
        carriers = [n for n, c in doc["channels"].items() if model.__name__ in c["messages"]]
        assert sorted(carriers) == sorted(model.channels()), model.__name__
        message = resolve(doc, doc["components"]["messages"][model.__name__])
        assert message["bindings"]["kafka"]["key"]["format"] == "uuid"
        Draft202012Validator.check_schema(resolve(doc, message["payload"]))


def test_asyncapi_operations_split_integrators_from_the_hub() -> None:
    ops = asyncapi_document()["operations"].values()
    integrator = {
        (o["action"], o["channel"]["$ref"]) for o in ops if o["tags"] == [{"name": "integrator"}]
    }
    readers = ("inbox", "deliveries", "cases", "requests")
    assert integrator == {("receive", f"#/channels/{c}") for c in readers}
    platform = {
        (o["action"], o["channel"]["$ref"]) for o in ops if o["tags"] == [{"name": "platform"}]
    }
    assert platform == {("receive", "#/channels/platform")}
    sent = {o["channel"]["$ref"] for o in ops if o["action"] == "send"}
    families = ("cases", "responses", "deliveries", "dlq", "inbox", "requests", "platform")
    assert sent == {f"#/channels/{c}" for c in families}


def _break_ref(doc: dict[str, Any]) -> None:
    doc["channels"]["cases"]["messages"]["CaseRegistered"] = {"$ref": "#/components/messages/X"}


def _foreign_message(doc: dict[str, Any]) -> None:
    doc["operations"]["receiveInbox"]["messages"].append(
        {"$ref": "#/channels/cases/messages/CaseRegistered"}
    )


def _bad_payload(doc: dict[str, Any]) -> None:
    doc["components"]["schemas"]["CaseRegistered"]["type"] = "thing"


def _undeclared_parameter(doc: dict[str, Any]) -> None:
    del doc["channels"]["inbox"]["parameters"]


@pytest.mark.parametrize(
    "damage", [_break_ref, _foreign_message, _bad_payload, _undeclared_parameter]
)
def test_structural_check_can_fail(damage: Callable[[dict[str, Any]], None]) -> None:
    doc = asyncapi_document()
    damage(doc)
    assert check_asyncapi(doc) != []


# validate_record


def _drop(name: str) -> Callable[[bytes, Headers], tuple[bytes, Headers]]:
    return lambda v, h: (v, [(k, x) for k, x in h if k != name])


def _set(name: str, raw: bytes) -> Callable[[bytes, Headers], tuple[bytes, Headers]]:
    return lambda v, h: (v, [(k, raw if k == name else x) for k, x in h])


def _payload(change: Callable[[dict[str, Any]], None]) -> Callable[..., tuple[bytes, Headers]]:
    def apply(value: bytes, headers: Headers) -> tuple[bytes, Headers]:
        body = orjson.loads(value)
        change(body)
        return orjson.dumps(body), headers

    return apply


BREACHES = {
    "missing ce_id": (_drop("ce_id"), "'ce_id' is a required property"),
    "empty ce_id": (_set("ce_id", b""), "headers ce_id"),
    "unknown ce_type": (_set("ce_type", b"eu.caseshare.case.exploded.v1"), "unknown ce_type"),
    "wrong schemaversion": (_set("ce_schemaversion", b"2"), "headers ce_schemaversion"),
    "wrong specversion": (_set("ce_specversion", b"0.3"), "headers ce_specversion"),
    "ce_time without offset": (_set("ce_time", b"2026-03-01T10:00:00"), "is not a 'date-time'"),
    "bad traceparent": (
        _set("traceparent", b"00-" + b"0" * 32 + b"-" + b"1" * 16 + b"-01"),
        "headers traceparent",
    ),
    "wrong content-type": (_set("content-type", b"text/plain"), "headers content-type"),
    "subject is not the case": (_set("ce_subject", str(uuid.uuid4()).encode()), "ce_subject"),
    "payload with extra field": (
        _payload(lambda b: b.update(selectors=["@someone"])),
        "'selectors' was unexpected",
    ),
    "payload with wrong type": (
        _payload(lambda b: b.update(emergency="yes")),
        "payload emergency: 'yes' is not of type 'boolean'",
    ),
    "payload with bad uuid": (_payload(lambda b: b.update(case_id="x")), "is not a 'uuid'"),
    "payload with bad date-time": (
        _payload(lambda b: b.update(registered_at="yesterday")),
        "payload registered_at",
    ),
    "payload missing a field": (_payload(lambda b: b.pop("platform")), "'platform' is a required"),
    "value not JSON": (lambda v, h: (b"\xff{", h), "not JSON"),
}


def test_validate_record_accepts_a_well_formed_record() -> None:
    value, headers, key = record(sample(CaseRegistered))
    validate_record(value, headers, key=key)


@pytest.mark.parametrize("breach", list(BREACHES))
def test_validate_record_rejects(breach: str) -> None:
    value, headers, key = record(sample(CaseRegistered))
    damage, expected = BREACHES[breach]
    value, headers = damage(value, headers)
    with pytest.raises(ContractViolation) as caught:
        validate_record(value, headers, key=key)
    assert expected in str(caught.value)


def test_validate_record_checks_the_key_when_given() -> None:
    value, headers, _ = record(sample(CaseRegistered))
    with pytest.raises(ContractViolation, match="record key"):
        validate_record(value, headers, key=str(uuid.uuid4()).encode())


def test_dead_letter_headers() -> None:
    headers = [
        ("dlq_error", b"PoisonMessage"),
        ("dlq_reason", b"unknown ce_type None"),
        ("dlq_topic", b"caseshare.responses.v1"),
        ("dlq_partition", b"0"),
        ("dlq_offset", b"17"),
        ("dlq_time", b"2026-03-01T10:00:00.123456+00:00"),
    ]
    validate_dead_letter(headers)
    with pytest.raises(ContractViolation, match="dlq_offset"):
        validate_dead_letter([h for h in headers if h[0] != "dlq_offset"])


# HTTP and files


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(asyncapi_router())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_routes_serve_the_document_and_schemas(client: httpx.AsyncClient) -> None:
    async with client:
        doc = await client.get("/asyncapi.json")
        schema = await client.get(f"/schemas/{CaseRegistered.TYPE}.json")
        missing = await client.get("/schemas/eu.caseshare.nothing.v1.json")
    assert doc.status_code == 200
    assert doc.json() == asyncapi_document()
    assert schema.status_code == 200
    assert schema.headers["content-type"] == "application/schema+json"
    assert schema.json() == event_schemas()[CaseRegistered.TYPE]
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


def test_script_writes_the_document_and_every_schema(tmp_path: Path) -> None:
    assert main(["--out", str(tmp_path)]) == 0
    assert json.loads((tmp_path / "asyncapi.json").read_text()) == asyncapi_document()
    written = {p.name for p in (tmp_path / "schemas").iterdir()}
    assert written == {f"{t}.json" for t in EVENT_TYPES}
