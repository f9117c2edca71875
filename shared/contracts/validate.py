"""Checking one Kafka record against the published contract, as an integrator's validator would.

`shared.kafka.decode` is deliberately forgiving (pydantic's lax mode); this is the strict
reading: the JSON Schemas and header rules we publish, so a producer that drifts from what
integrators were promised fails a test instead of failing a member state's consumer.

`jsonschema` is imported on first use: it is a development dependency, and the registry
serves the documents without it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import orjson

from shared.contracts.schemas import (
    ROUTING,
    cloudevents_headers_schema,
    dead_letter_headers_schema,
    event_schema,
    is_rfc3339,
    message_headers_schema,
)
from shared.events import EVENT_TYPES
from shared.kafka import PoisonMessage

RecordHeaders = Iterable[tuple[str, bytes | None]] | None


class ContractViolation(PoisonMessage):
    """A record that breaks the published contract; `problems` lists every breach found."""

    def __init__(self, ce_type: str | None, problems: list[str]) -> None:
        self.ce_type, self.problems = ce_type, problems
        super().__init__(f"{ce_type or 'record'} breaks its contract: " + "; ".join(problems))


def validate_record(
    value: bytes | None, headers: RecordHeaders, *, key: bytes | None = None
) -> None:
    """Raise ContractViolation unless the record matches its CloudEvents headers and schema.

    With `key`, the record key must also be the payload field the contract names as key.
    """
    hdrs = _headers(headers)
    ce_type = hdrs.get("ce_type")
    if ce_type not in EVENT_TYPES:
        raise ContractViolation(None, [f"unknown ce_type {ce_type!r}"])
    problems = _errors(("headers", ce_type), hdrs)
    if value is None:
        raise ContractViolation(ce_type, [*problems, "record value is empty"])
    try:
        payload = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ContractViolation(ce_type, [*problems, "record value is not JSON"]) from None
    problems += _errors(("payload", ce_type), payload)
    if isinstance(payload, dict):
        problems += _routing(ce_type, payload, hdrs.get("ce_subject"), key)
    if problems:
        raise ContractViolation(ce_type, problems)


def validate_dead_letter(headers: RecordHeaders) -> None:
    """Raise ContractViolation unless a DLQ record carries the reason and origin headers."""
    problems = _errors(("dlq", ""), _headers(headers))
    if problems:
        raise ContractViolation("dead letter", problems)


def _headers(headers: RecordHeaders) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, raw in headers or ():
        if name in out:
            raise ContractViolation(None, [f"header {name} appears twice"])
        try:
            out[name] = (raw or b"").decode("utf-8")
        except UnicodeDecodeError:
            raise ContractViolation(None, [f"header {name} is not UTF-8"]) from None
    return out


def _routing(
    ce_type: str, payload: Mapping[str, Any], subject: str | None, key: bytes | None
) -> list[str]:
    route = ROUTING[ce_type]
    problems = []
    if subject is not None and subject != str(payload.get(route.subject)):
        problems.append(f"ce_subject {subject!r} is not the payload's {route.subject}")
    if key is not None and key.decode(errors="replace") != str(payload.get(route.key)):
        problems.append(f"record key {key!r} is not the payload's {route.key}")
    return problems


def _errors(which: tuple[str, str], instance: object) -> list[str]:
    validator = _validator(*which)
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [_describe(which[0], e) for e in found]


def _describe(kind: str, error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{kind} {where or '(root)'}: {error.message}"


@cache
def _validator(kind: str, ce_type: str) -> Any:
    from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]

    schema = {
        "headers": lambda: message_headers_schema(ce_type, common=cloudevents_headers_schema()),
        "payload": lambda: event_schema(ce_type),
        "dlq": dead_letter_headers_schema,
    }[kind]()
    checker = FormatChecker()
    # without the optional rfc3339-validator, jsonschema would not check date-time at all
    checker.checks("date-time")(is_rfc3339)
    return Draft202012Validator(schema, format_checker=checker)
