"""Requests are counted by route template and final status, failures and refusals included."""

from __future__ import annotations

import httpx
from fastapi import FastAPI

from shared import metrics
from shared.web import install_common


def app_with_metrics() -> tuple[FastAPI, metrics.ServiceMetrics]:
    app = FastAPI()
    install_common(app, max_body_bytes=1024)
    exported = metrics.ServiceMetrics("test")
    metrics.install(app, exported, engine=lambda: None)

    @app.post("/things/{thing_id}")
    async def boom(thing_id: str) -> None:
        raise RuntimeError("unexpected")

    return app, exported


def value(m: metrics.ServiceMetrics, **labels: str) -> float:
    for family in m.registry.collect():
        for sample in family.samples:
            if sample.name == "caseshare_http_requests_total" and sample.labels == labels:
                return sample.value
    return 0.0


async def test_a_crash_counts_as_500_and_a_refused_body_as_413_under_the_template() -> None:
    app, exported = app_with_metrics()
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.post("/things/abc-123")).status_code == 500
        assert (await client.post("/things/x", content=b"x" * 2048)).status_code == 413
        assert (await client.get("/metrics")).status_code == 200
    route = {"service": "test", "route": "/things/{thing_id}", "method": "POST"}
    assert value(exported, **route, status="500") == 1
    # refused before routing: the size cap answers, so no template is known
    unmatched = {"service": "test", "route": "unmatched", "method": "POST"}
    assert value(exported, **unmatched, status="413") == 1
    assert not any(
        "abc-123" in str(s.labels) for f in exported.registry.collect() for s in f.samples
    )
