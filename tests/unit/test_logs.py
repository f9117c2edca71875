"""Structured logging: one JSON object per line, request ids attached, personal data dropped."""

from __future__ import annotations

import json
import logging

from shared import logs


def _format(**extra: object) -> dict[str, object]:
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": "m", **extra})
    line = logs.JsonFormatter().format(record)
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_ids_pass_through_and_personal_fields_are_redacted() -> None:
    out = _format(
        case_id="c-1",
        delivery_id="d-1",
        phone="+33612345678",
        disclosures=[{"value": "203.0.113.7"}],
        value="203.0.113.7",
    )
    assert out["case_id"] == "c-1"
    assert out["delivery_id"] == "d-1"
    assert out["phone"] == out["disclosures"] == out["value"] == "[redacted]"
    assert "203.0.113.7" not in json.dumps(out)


def test_request_id_comes_from_the_context() -> None:
    token = logs.request_id_var.set("req-42")
    try:
        assert _format()["request_id"] == "req-42"
    finally:
        logs.request_id_var.reset(token)
