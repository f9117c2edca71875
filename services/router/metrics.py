"""Prometheus metrics of the router, on a registry of its own (no global state in tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge

from services.registry.requests.rules import BREACH_LABELS, REMINDER_LABELS, REMINDER_THRESHOLDS
from services.registry.webhooks.rules import EndpointState

REDRIVE_KINDS = ("fanout", "delivery")


@dataclass
class RouterMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumed = Counter("caseshare_router_consumed", "Records consumed", registry=r)
        self.delivered = Counter(
            "caseshare_router_delivered", "Deliveries produced to inbox topics", registry=r
        )
        self.excluded = Counter(
            "caseshare_router_excluded", "Jurisdictions excluded with a reason", registry=r
        )
        self.redrives = Counter(
            "caseshare_router_reconciler_redrives",
            "Fan-outs and deliveries re-driven",
            ["kind"],
            registry=r,
        )
        for kind in REDRIVE_KINDS:  # present at 0 from the start, so increase() sees the first
            self.redrives.labels(kind=kind)
        self.dlq = Counter("caseshare_router_dlq", "Records sent to the DLQ", registry=r)
        self.relayed = Counter(
            "caseshare_router_outbox_published", "Outbox events published", registry=r
        )
        self.lag = Gauge("caseshare_router_lag", "Consumer lag in records", registry=r)
        self.deadline_reminders = Counter(
            "caseshare_deadline_reminders",
            "Deadline reminders sent (50% and 80% of a window)",
            ["kind", "threshold"],
            registry=r,
        )
        self.deadline_breaches = Counter(
            "caseshare_deadline_breaches",
            "Legal deadlines that expired unanswered",
            ["kind"],
            registry=r,
        )
        # At 0 from the start, as the redrives: a series born at 1 shows no increase(), so
        # CaseshareDeadlineBreached would miss the first breach of each kind.
        for kind in REMINDER_LABELS:
            for threshold in REMINDER_THRESHOLDS.values():
                self.deadline_reminders.labels(kind=kind, threshold=threshold)
        for kind in BREACH_LABELS:
            self.deadline_breaches.labels(kind=kind)
        self.failed = Counter(
            "caseshare_router_deliveries_failed",
            "Deliveries given up after max attempts",
            registry=r,
        )
        self.webhook_endpoints = Gauge(
            "caseshare_webhook_endpoints",
            "Webhook endpoints by state (disabled ones alert)",
            ["state"],
            registry=r,
        )
        # 0 until this router leads the dispatcher and counts; the rules take the max.
        for state in EndpointState:
            self.webhook_endpoints.labels(state=state.value)

    def set_webhook_endpoints(self, counts: dict[str, int]) -> None:
        """Report the webhook dispatcher's latest count of endpoints per state."""
        for state, n in counts.items():
            self.webhook_endpoints.labels(state=state).set(n)
