"""`python -m bench` (`make bench`): every figure beside its baseline, in one run.

Rounds alternate target and baseline back to back, so that the load other work puts on the
machine falls on both sides of each ratio. Tunables come from the environment (BENCH_RUNS,
BENCH_INTAKE_SECONDS, BENCH_CONNECTIONS, BENCH_ROUTER_RESPONSES, BENCH_E2E_RATE,
BENCH_E2E_SECONDS, BENCH_LABEL, BENCH_PROFILE=1, BENCH_USE_RUNNING=1).
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import e2e, intake, memory, profile, report, router, stats
from bench.stack import Target, target


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


RUNS = int(_env("BENCH_RUNS", 3))
INTAKE_SECONDS = _env("BENCH_INTAKE_SECONDS", 8)
CONNECTIONS = int(_env("BENCH_CONNECTIONS", 16))
ROUTER_RESPONSES = int(_env("BENCH_ROUTER_RESPONSES", 100))
# Latency is only a latency below the router's capacity (about 10-15 responses/s here);
# above it the figure measures the queue. BENCH_E2E_RATE=20 shows the overload case.
E2E_RATE = _env("BENCH_E2E_RATE", 5)
E2E_SECONDS = _env("BENCH_E2E_SECONDS", 10)
LABEL = os.environ.get("BENCH_LABEL") or None
PROFILE = os.environ.get("BENCH_PROFILE") == "1"


def _say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", flush=True)


def _tokens(t: Target) -> list[str]:
    return [t.token(client) for client in intake.AUTHORITIES]


def run_id(tag: str) -> str:
    """Unique within the database, so every reference and selector of a run is new."""
    return f"{tag}{int(time.time() * 1000) % 10**10}"


def bench_intake(t: Target) -> dict[str, Any]:
    dsn = t.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    bare, commit = intake.BareServer(), intake.BareServer(dsn)
    try:
        tokens = _tokens(t)
        for url in (bare.url, commit.url, t.url("intake")):  # warm all (first requests, JWKS)
            intake.run_wrk(url, tokens=tokens, run_id=run_id("w"), connections=4, seconds=2)
        runs: dict[str, list[intake.WrkResult]] = {"target": [], "baseline": [], "commit": []}
        servers = [("baseline", bare.url), ("commit", commit.url), ("target", t.url("intake"))]
        for i in range(RUNS):
            for name, url in servers[i % 3 :] + servers[: i % 3]:  # rotate who goes first
                runs[name].append(
                    intake.run_wrk(
                        url,
                        tokens=tokens,
                        run_id=run_id(f"r{i}"),
                        connections=CONNECTIONS,
                        seconds=INTAKE_SECONDS,
                    )
                )
            _say(
                f"intake round {i + 1}: {runs['target'][-1]} vs bare {runs['baseline'][-1]}"
                f" and bare + one commit {runs['commit'][-1]}"
            )
    finally:
        bare.stop()
        commit.stop()
    return runs


def bench_router(t: Target) -> dict[str, Any]:
    asyncio.run(router.fan_out(t, responses=10))  # warm-up: topics, pools, first fan-outs
    record = asyncio.run(router.sample_record(t))
    runs: dict[str, list[float]] = {"target": [], "pipelined": [], "batched5": []}
    for i in range(RUNS):
        fanned = asyncio.run(router.fan_out(t, responses=ROUTER_RESPONSES))
        count = fanned.deliveries
        pipelined = asyncio.run(router.raw_produce(t, record, count=count, batch=count))
        batched = asyncio.run(router.raw_produce(t, record, count=count, batch=5))
        runs["target"].append(fanned.rate)
        runs["pipelined"].append(pipelined.rate)
        runs["batched5"].append(batched.rate)
        _say(
            f"router round {i + 1}: {fanned.rate:.0f} deliveries/s vs raw produce "
            f"{pipelined.rate:.0f}/s pipelined, {batched.rate:.0f}/s in acked fives"
        )
    return {"runs": runs, "record_bytes": len(record[1])}


def bench_e2e(t: Target) -> dict[str, Any]:
    record = asyncio.run(router.sample_record(t))
    out: dict[str, list[dict[str, float]]] = {"target": [], "baseline": []}
    for i in range(RUNS):
        mine = asyncio.run(e2e.caseshare_latency(t, rate=E2E_RATE, seconds=E2E_SECONDS))
        theirs = asyncio.run(e2e.broker_latency(t, record, rate=E2E_RATE, seconds=E2E_SECONDS))
        for into, lat in ((out["target"], mine), (out["baseline"], theirs)):
            into.append(
                {"p50": stats.percentile(lat, 50), "p99": stats.percentile(lat, 99), "n": len(lat)}
            )
        _say(f"e2e round {i + 1}: {out['target'][-1]} vs broker {out['baseline'][-1]}")
    return out


def _profiles(t: Target, pids: dict[str, int]) -> dict[str, Any]:
    """One extra, unmeasured round of intake and router load under py-spy."""
    where = report.RESULTS / "profiles"
    tag = LABEL or "latest"
    found: dict[str, Any] = {}
    tokens = _tokens(t)
    out = where / f"{tag}-intake.txt"
    with profile.spy(pids["intake"], out, seconds=INTAKE_SECONDS):
        intake.run_wrk(
            t.url("intake"),
            tokens=tokens,
            run_id=f"p{int(time.time())}",
            connections=CONNECTIONS,
            seconds=INTAKE_SECONDS,
        )
    found["intake"] = profile.summarize(out)
    out = where / f"{tag}-router.txt"
    with profile.spy(pids["router"], out, seconds=15):
        asyncio.run(router.fan_out(t, responses=ROUTER_RESPONSES))
    found["router"] = profile.summarize(out)
    return found


def _figure(
    name: str, tgt: str, base: str, ratio: stats.Summary, goal: str, met: bool
) -> dict[str, Any]:
    return {"name": name, "target": tgt, "baseline": base, "ratio": ratio, "goal": goal, "met": met}


def _figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    it, ib, ic = res["intake"]["target"], res["intake"]["baseline"], res["intake"]["commit"]
    med = stats.median
    intake_ratio = stats.ratio([r.rps for r in it], [r.rps for r in ib])
    commit_ratio = stats.ratio([r.rps for r in ic], [r.rps for r in ib])
    intake_vs_commit = stats.ratio([r.rps for r in it], [r.rps for r in ic])
    rr = res["router"]["runs"]
    router_ratio = stats.ratio(rr["target"], rr["pipelined"])
    router_ratio5 = stats.ratio(rr["target"], rr["batched5"])
    et, eb = res["e2e"]["target"], res["e2e"]["baseline"]
    p99_ratio = stats.ratio([r["p99"] for r in et], [r["p99"] for r in eb])
    p50_ratio = stats.ratio([r["p50"] for r in et], [r["p50"] for r in eb])

    def lat(rs: list[dict[str, float]]) -> str:
        return f"p50 {med([r['p50'] for r in rs]):.1f} / p99 {med([r['p99'] for r in rs]):.1f} ms"

    def wrk(rs: list[intake.WrkResult]) -> str:
        return (
            f"{med([r.rps for r in rs]):.0f} req/s (p50 {med([r.p50_ms for r in rs]):.1f} / "
            f"p99 {med([r.p99_ms for r in rs]):.1f} ms)"
        )

    return [
        _figure(
            "intake POST /v1/cases throughput",
            wrk(it),
            wrk(ib),
            intake_ratio,
            "≥ 0.5",
            intake_ratio["median"] >= 0.5,
        ),
        _figure(
            "bare endpoint + one PostgreSQL commit (ceiling)",
            wrk(ic),
            wrk(ib),
            commit_ratio,
            "context",
            True,
        ),
        _figure(
            "intake vs bare + one commit",
            wrk(it),
            wrk(ic),
            intake_vs_commit,
            "context",
            True,
        ),
        _figure(
            "router deliveries/s (5 recipients)",
            f"{med(rr['target']):.0f}/s",
            f"{med(rr['pipelined']):.0f}/s raw produce",
            router_ratio,
            "≥ 0.25",
            router_ratio["median"] >= 0.25,
        ),
        _figure(
            "router vs raw produce in acked fives",
            f"{med(rr['target']):.0f}/s",
            f"{med(rr['batched5']):.0f}/s",
            router_ratio5,
            "context",
            True,
        ),
        _figure(
            f"e2e p99 at {E2E_RATE:.0f} responses/s",
            lat(et),
            lat(eb),
            p99_ratio,
            "≤ 3",
            p99_ratio["median"] <= 3,
        ),
        _figure("e2e p50 (context)", lat(et), lat(eb), p50_ratio, "context", True),
    ]


def main() -> None:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    began = time.monotonic()
    with target() as t:
        pids = t.service_pids()
        _say(f"stack ready: {t.ports}; service pids {pids}")
        res: dict[str, Any] = {}
        peaks: dict[str, dict[str, float]] = {}
        cpu: dict[str, dict[str, float]] = {}
        with memory.Sampler(pids) as overall:
            for name, phase in (
                ("intake", bench_intake),
                ("router", bench_router),
                ("e2e", bench_e2e),
            ):
                with memory.Sampler(pids) as sampled:
                    res[name] = phase(t)
                peaks[name], cpu[name] = sampled.peak_mib, sampled.cpu_seconds
                _say(f"{name} phase: peak RSS {peaks[name]}, CPU s {cpu[name]}")
        results: dict[str, Any] = {
            "started_at": started,
            "label": LABEL,
            "runs": RUNS,
            "settings": {
                "intake_seconds": INTAKE_SECONDS,
                "connections": CONNECTIONS,
                "router_responses": ROUTER_RESPONSES,
                "e2e_rate": E2E_RATE,
                "e2e_seconds": E2E_SECONDS,
                "use_running": os.environ.get("BENCH_USE_RUNNING"),
            },
            "load_before": load_before,
            "intake": {k: [vars(r) for r in v] for k, v in res["intake"].items()},
            "router": res["router"],
            "e2e": res["e2e"],
            "memory": {"peak_mib": overall.peak_mib, "by_phase": peaks, "cpu_seconds": cpu},
            "figures": _figures(res),
        }
        if PROFILE:
            results["profiles"] = _profiles(t, pids)
    results["machine"] = report.machine()
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    path = report.write(results, LABEL)
    print(report.table(results))
    print(f"\nresults: {Path(path).relative_to(report.ROOT)}; {results['wall_seconds']} s")


if __name__ == "__main__":
    main()
