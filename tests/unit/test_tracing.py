"""Tracing is off, and touches nothing, unless configured; on, it parents spans by traceparent."""

from __future__ import annotations

import subprocess
import sys

import aiokafka
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared import tracing
from shared.events import CaseRegistered
from shared.kafka import encode_payload

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_without_an_endpoint_nothing_is_configured_or_patched() -> None:
    send = aiokafka.AIOKafkaProducer.send
    assert tracing.configure("intake", endpoint=None) is None
    assert not tracing.active()
    assert tracing.current_traceparent() is None
    with tracing.continued("route response", traceparent=PARENT):
        assert tracing.current_traceparent() is None
    assert aiokafka.AIOKafkaProducer.send is send


def test_while_off_the_services_do_not_load_the_sdk_or_its_instrumentations() -> None:
    # about 4 MiB and a hundred modules in every process; FastAPI itself loads only the API
    probe = (
        "import sys, services.intake.app, services.registry.app, services.router.app\n"
        "print(sorted(m for m in sys.modules if m.startswith(("
        "'opentelemetry.sdk', 'opentelemetry.instrumentation', 'opentelemetry.exporter'))))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    assert loaded.strip() == "[]"


def test_records_carry_a_traceparent_of_their_own_while_tracing_is_off() -> None:
    _, headers = encode_payload({}, event_type=CaseRegistered, ce_id="1", subject=None)
    assert [k for k, _ in headers].count("traceparent") == 1


def test_a_continued_span_joins_the_given_trace_and_shutdown_undoes_everything() -> None:
    send = aiokafka.AIOKafkaProducer.send
    exporter = InMemorySpanExporter()
    traced = tracing.configure("router", endpoint=None, exporter=exporter)
    assert traced is not None
    try:
        assert aiokafka.AIOKafkaProducer.send is not send  # the instrumentation is on
        with pytest.raises(RuntimeError, match="already configured"):
            tracing.configure("router", endpoint=None, exporter=exporter)
        headers = [("ce_id", b"1"), ("traceparent", PARENT.encode())]
        with tracing.continued("route response", headers=headers):
            inner = tracing.current_traceparent()
        # with the instrumentation injecting the producer span's context, none of our own
        _, produced = encode_payload({}, event_type=CaseRegistered, ce_id="1", subject=None)
        assert "traceparent" not in dict(produced)
    finally:
        traced.shutdown()
    assert not tracing.active()
    assert aiokafka.AIOKafkaProducer.send is send
    (span,) = exporter.get_finished_spans()
    assert span.name == "route response"
    assert f"{span.context.trace_id:032x}" == PARENT.split("-")[1]
    assert span.parent is not None
    assert f"{span.parent.span_id:016x}" == PARENT.split("-")[2]
    assert inner is not None
    assert inner.split("-")[2] == f"{span.context.span_id:016x}"
