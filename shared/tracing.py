"""OpenTelemetry tracing for every process: one trace from an HTTP request through the outbox,
Kafka and the router to the inbox topic. Off unless OTEL_EXPORTER_OTLP_ENDPOINT is set.

Tracing is process-wide by nature (the current span is a context variable, and the asyncpg and
aiokafka instrumentations patch the libraries' classes), so `configure` runs once, in a
process's entry point before its app is built, and `Tracing.shutdown` undoes it. While it is
off nothing is patched, nothing is wrapped and OpenTelemetry is not even imported (about 4 MiB
of every process): the hot path pays one `is None` test per outbox batch, record or app,
never a no-op span per call.

How a trace crosses processes: the outbox row keeps the `traceparent` of the transaction that
queued it (`current_traceparent`); the relay publishes under that parent, and the aiokafka
instrumentation injects the producer span's `traceparent` header into the record; the router
continues from that header (`continued`) and its own publishes are children of its span.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported at run time only by `configure`: off, OpenTelemetry is not loaded
    from fastapi import FastAPI
    from opentelemetry import trace
    from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
        BaseInstrumentor,
    )
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

logger = logging.getLogger(__name__)

TRACER_NAME = "caseshare"
# Probes and scrapes every few seconds would drown the traces that matter.
EXCLUDED_URLS = "healthz,readyz,metrics"


@dataclass
class Tracing:
    """The process's tracer provider and the library instrumentations it switched on."""

    provider: TracerProvider
    tracer: trace.Tracer
    instrumentors: list[BaseInstrumentor] = field(default_factory=list)

    def shutdown(self) -> None:
        """Flush pending spans, unpatch the libraries, and turn tracing off again."""
        global _active
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        self.provider.shutdown()
        if _active is self:
            _active = None


_active: Tracing | None = None


def configure(
    service: str, *, endpoint: str | None, exporter: SpanExporter | None = None
) -> Tracing | None:
    """Switch tracing on for this process if an OTLP `endpoint` (or, in tests, an
    `exporter`) is given; None, and nothing changed, otherwise."""
    global _active
    if exporter is None and not endpoint:
        return None
    if _active is not None:
        raise RuntimeError("tracing is already configured in this process")
    from opentelemetry.instrumentation.aiokafka import AIOKafkaInstrumentor
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": f"caseshare-{service}"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(endpoint or "")))
    tracing = Tracing(provider, provider.get_tracer(TRACER_NAME))
    pg = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    for instrumentor in (pg, AIOKafkaInstrumentor()):
        instrumentor.instrument(tracer_provider=provider)
        tracing.instrumentors.append(instrumentor)
    _active = tracing
    logger.info("tracing on", extra={"service": service, "otlp": bool(endpoint)})
    return tracing


def _otlp_exporter(endpoint: str) -> SpanExporter:
    # Imported only when configured: the exporter pulls in protobuf and its HTTP session.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")


def active() -> bool:
    """Whether this process traces (callers skip all tracing work when it does not)."""
    return _active is not None


def instrument_app(app: FastAPI) -> None:
    """Server spans for every request of `app`, named by route template; nothing when off."""
    if _active is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_active.provider,
        excluded_urls=EXCLUDED_URLS,
        exclude_spans=["receive", "send"],
    )


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to store beside work another process picks
    up later (the outbox); None when tracing is off or no span is current."""
    if _active is None:
        return None
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def continued(
    name: str,
    *,
    traceparent: str | None = None,
    headers: Iterable[tuple[str, bytes | None]] | None = None,
    attributes: dict[str, Any] | None = None,
) -> Iterator[None]:
    """Run the block in a span named `name` whose parent is the given `traceparent` or the one
    in Kafka record `headers` (a new trace without either); no span at all when off."""
    if _active is None:
        yield
        return
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    if traceparent:
        carrier["traceparent"] = traceparent
    for key, value in headers or ():
        if key == "traceparent" and value is not None:
            carrier.setdefault(key, value.decode(errors="replace"))
    parent = propagate.extract(carrier)
    with _active.tracer.start_as_current_span(name, context=parent, attributes=attributes):
        yield
