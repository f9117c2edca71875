"""`python -m bench` (`make bench`): every figure beside its baseline, in one run.

Rounds alternate target and baseline back to back, so that the load other work puts on the
machine falls on both sides of each ratio. The headline baseline of every durable path is the
commit ceiling: a bare endpoint committing one row through raw asyncpg, PostgreSQL's physical
limit on this machine; the bare endpoint and raw produce stay as context rows.

Tunables come from the environment (BENCH_RUNS, BENCH_INTAKE_SECONDS, BENCH_CONNECTIONS,
BENCH_ROUTER_RESPONSES, BENCH_E2E_RATES, BENCH_E2E_SECONDS, BENCH_SCALE, BENCH_PHASES,
BENCH_LABEL, BENCH_PROFILE=1, BENCH_USE_RUNNING=1; INTAKE_WORKERS and the services' other
settings reach the stack the bench starts).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import (
    e2e,
    intake,
    memory,
    paths,
    plot,
    profile,
    report,
    router,
    scale,
    stack,
    stats,
    workload,
)
from bench.stack import Target, target


def _env(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


RUNS = int(_env("BENCH_RUNS", 3))
INTAKE_SECONDS = _env("BENCH_INTAKE_SECONDS", 8)
CONNECTIONS = int(_env("BENCH_CONNECTIONS", 16))
ROUTER_RESPONSES = int(_env("BENCH_ROUTER_RESPONSES", 100))
# A drained queue is the router's capacity figure: long enough that the first batch after the
# resumption (and its fetch wait) is a small share of the window.
ROUTER_DRAIN_RESPONSES = int(_env("BENCH_ROUTER_DRAIN_RESPONSES", 300))
# The two offered loads: 5 responses/s (a latency) and 50/s (near the router's capacity).
E2E_RATES = [float(x) for x in os.environ.get("BENCH_E2E_RATES", "5,50").split(",") if x]
E2E_P99_GOALS = {5.0: 2.0, 50.0: 3.0}
E2E_SECONDS = _env("BENCH_E2E_SECONDS", 10)
# Registered cases at each point of the scale curve (seeded through the database).
SCALE = [int(float(x)) for x in os.environ.get("BENCH_SCALE", "1e4,1e5,1e6").split(",") if x]
SCALE_RESPONSES = int(_env("BENCH_SCALE_RESPONSES", 30))
PHASES = os.environ.get("BENCH_PHASES", "intake,router,e2e,paths,scale").split(",")
GROWTH_GOAL = 1.5
LABEL = os.environ.get("BENCH_LABEL") or None
PROFILE = os.environ.get("BENCH_PROFILE") == "1"
PROFILES = report.RESULTS / "profiles"
# A failed phase's evidence (bench/tmp is not committed): the stack's logs go with the run.
FAILED_LOGS = report.ROOT / "bench" / "tmp" / "failed"


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


def bench_router(t: Target, pids: dict[str, int]) -> dict[str, Any]:
    """Deliveries/s beside the commit ceiling (measured again in each round, back to back)."""
    asyncio.run(router.fan_out(t, responses=10))  # warm-up: topics, pools, first fan-outs
    record = asyncio.run(router.sample_record(t))
    dsn = t.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    commit = intake.BareServer(dsn)
    runs: dict[str, list[float]] = {
        "target": [],
        "pipelined": [],
        "batched5": [],
        "commit": [],
        "submitted": [],
        "drained": [],
    }
    try:
        tokens = _tokens(t)
        intake.run_wrk(commit.url, tokens=tokens, run_id=run_id("w"), connections=4, seconds=2)
        for i in range(RUNS):
            ceiling = intake.run_wrk(
                commit.url,
                tokens=tokens,
                run_id=run_id(f"c{i}"),
                connections=CONNECTIONS,
                seconds=INTAKE_SECONDS,
            )
            fanned = asyncio.run(router.fan_out(t, responses=ROUTER_RESPONSES))
            count = fanned.deliveries
            pipelined = asyncio.run(router.raw_produce(t, record, count=count, batch=count))
            batched = asyncio.run(router.raw_produce(t, record, count=count, batch=5))
            runs["target"].append(fanned.rate)
            runs["commit"].append(ceiling.rps)
            runs["pipelined"].append(pipelined.rate)
            runs["batched5"].append(batched.rate)
            runs["submitted"].append(fanned.submitted_rate)
            if "router" in pids:
                drained = asyncio.run(
                    router.drain(t, responses=ROUTER_DRAIN_RESPONSES, pid=pids["router"])
                )
                runs["drained"].append(drained.rate)
            _say(
                f"router round {i + 1}: {fanned.rate:.0f} deliveries/s vs commit ceiling "
                f"{ceiling.rps:.0f}/s; raw produce {pipelined.rate:.0f}/s pipelined, "
                f"{batched.rate:.0f}/s in acked fives; responses accepted at "
                f"{fanned.submitted_rate:.0f} deliveries/s; a queue drained at "
                f"{runs['drained'][-1] if runs['drained'] else 0:.0f}/s"
            )
    finally:
        commit.stop()
    return {"runs": runs, "record_bytes": len(record[1])}


def bench_paths(t: Target, pids: dict[str, int]) -> dict[str, Any]:
    """Issuing a request, releasing a held delivery and the platform's inbox page, each beside
    its baseline in the same round (see bench/paths.py)."""
    return paths.measure(
        t,
        runs=RUNS,
        seconds=INTAKE_SECONDS,
        connections=CONNECTIONS,
        say=_say,
        intake_pid=pids["intake"],
        profile_prefix=report.RESULTS / "profiles" / f"{LABEL or 'latest'}-paths"
        if PROFILE
        else None,
    )


def bench_e2e(t: Target) -> dict[str, Any]:
    """At each offered load: caseshare's latency, then the broker's own, per round; with
    caseshare's stage breakdown of each round."""
    record = None
    out: dict[str, Any] = {}
    for rate in E2E_RATES:
        runs: dict[str, list[dict[str, Any]]] = {"target": [], "baseline": [], "stages": []}
        for i in range(RUNS):
            mine = asyncio.run(e2e.caseshare_latency(t, rate=rate, seconds=E2E_SECONDS))
            if record is None:  # copied after caseshare's first round: the phase runs alone
                record = asyncio.run(router.sample_record(t))
            theirs = asyncio.run(e2e.broker_latency(t, record, rate=rate, seconds=E2E_SECONDS))
            for into, lat in ((runs["target"], mine.latencies), (runs["baseline"], theirs)):
                into.append(
                    {
                        "p50": stats.percentile(lat, 50),
                        "p99": stats.percentile(lat, 99),
                        "n": len(lat),
                    }
                )
            runs["stages"].append(mine.stages)
            _say(
                f"e2e {rate:g}/s round {i + 1}: {runs['target'][-1]} "
                f"vs broker {runs['baseline'][-1]}; load {os.getloadavg()[0]:.1f}"
            )
            _say(f"  stages (ms): {e2e.describe(mine.stages)}")
        out[f"{rate:g}"] = runs
    return out


def bench_scale(t: Target, pids: dict[str, int]) -> dict[str, Any]:
    """Seed up to each size through the database, then measure every scale figure there."""
    points: list[dict[str, Any]] = []
    tokens = _tokens(t)
    for size in SCALE:
        seeded = asyncio.run(scale.seed_to(t, size))
        _say(f"scale: seeded {seeded['added']} cases in {seeded['seconds']} s, now {size}")
        point = scale.measure(t, pids, tokens, size=size, runs=RUNS, responses=SCALE_RESPONSES)
        point["seeded"] = seeded
        points.append(point)
        _say(f"scale {size}: {point['rounds'][-1]}, peak RSS {point['peak_mib']}")
    return {"points": points}


def _profiles(t: Target, pids: dict[str, int]) -> dict[str, Any]:
    """One extra, unmeasured round of intake and router load under py-spy."""
    where = PROFILES
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
    name: str, tgt: str, base: str, ratio: stats.Summary | None, goal: str, met: bool | None
) -> dict[str, Any]:
    return {"name": name, "target": tgt, "baseline": base, "ratio": ratio, "goal": goal, "met": met}


def _wrk(rs: list[intake.WrkResult]) -> str:
    med = stats.median
    return (
        f"{med([r.rps for r in rs]):.0f} req/s (p50 {med([r.p50_ms for r in rs]):.1f} / "
        f"p99 {med([r.p99_ms for r in rs]):.1f} ms)"
    )


def _lat(rs: list[dict[str, float]]) -> str:
    med = stats.median
    return f"p50 {med([r['p50'] for r in rs]):.1f} / p99 {med([r['p99'] for r in rs]):.1f} ms"


def _intake_figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    it, ib, ic = res["target"], res["baseline"], res["commit"]
    rps = [r.rps for r in it]
    vs_ceiling = stats.ratio(rps, [r.rps for r in ic])
    return [
        _figure(
            "intake registrations/s vs commit ceiling",
            _wrk(it),
            _wrk(ic),
            vs_ceiling,
            "≥ 0.5",
            vs_ceiling["median"] >= 0.5,
        ),
        _figure(
            "commit ceiling vs bare endpoint",
            _wrk(ic),
            _wrk(ib),
            stats.ratio([r.rps for r in ic], [r.rps for r in ib]),
            "context",
            None,
        ),
        _figure(
            "intake vs bare endpoint",
            _wrk(it),
            _wrk(ib),
            stats.ratio(rps, [r.rps for r in ib]),
            "context",
            None,
        ),
    ]


def _router_figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    rr, med = res["runs"], stats.median
    # The target is the router's own capacity: a queue drained with full batches. Fed at
    # intake's pace, the window also measures how fast intake accepts the responses; that row
    # stays as context, and stands in for the target when the bench did not start the router
    # itself (BENCH_USE_RUNNING) and so cannot pause it.
    drained = bool(rr.get("drained"))
    fed = stats.ratio(rr["target"], rr["commit"])
    rows = []
    if drained:
        vs_ceiling = stats.ratio(rr["drained"], rr["commit"])
        rows.append(
            _figure(
                "router deliveries/s vs commit ceiling (draining a queue, 5 recipients)",
                f"{med(rr['drained']):.0f}/s",
                f"{med(rr['commit']):.0f} commits/s",
                vs_ceiling,
                "≥ 1.0",
                vs_ceiling["median"] >= 1.0,
            )
        )
    rows.append(
        _figure(
            "router deliveries/s vs commit ceiling, fed at intake's pace (5 recipients)",
            f"{med(rr['target']):.0f}/s",
            f"{med(rr['commit']):.0f} commits/s",
            fed,
            "context" if drained else "≥ 1.0",
            None if drained else fed["median"] >= 1.0,
        )
    )
    return [
        *rows,
        _figure(
            "router fed at intake's pace vs raw produce, all in flight",
            f"{med(rr['target']):.0f}/s",
            f"{med(rr['pipelined']):.0f}/s",
            stats.ratio(rr["target"], rr["pipelined"]),
            "context",
            None,
        ),
        _figure(
            "router fed at intake's pace vs raw produce in acked fives",
            f"{med(rr['target']):.0f}/s",
            f"{med(rr['batched5']):.0f}/s",
            stats.ratio(rr["target"], rr["batched5"]),
            "context",
            None,
        ),
        # near 1: the router keeps pace with intake, and the fed rate above is intake's
        _figure(
            "router fed at intake's pace vs intake accepting the same responses (as deliveries/s)",
            f"{med(rr['target']):.0f}/s",
            f"{med(rr['submitted']):.0f}/s",
            stats.ratio(rr["target"], rr["submitted"]),
            "context",
            None,
        ),
    ]


def _e2e_figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for rate, runs in res.items():
        et, eb = runs["target"], runs["baseline"]
        p99 = stats.ratio([r["p99"] for r in et], [r["p99"] for r in eb])
        goal = E2E_P99_GOALS.get(float(rate))
        rows.append(
            _figure(
                f"e2e p99 at {rate} responses/s vs broker p99",
                _lat(et),
                _lat(eb),
                p99,
                f"≤ {goal:g}" if goal else "context",
                p99["median"] <= goal if goal else None,
            )
        )
        rows.append(
            _figure(
                f"e2e p50 at {rate} responses/s vs broker p50",
                _lat(et),
                _lat(eb),
                stats.ratio([r["p50"] for r in et], [r["p50"] for r in eb]),
                "context",
                None,
            )
        )
    return rows


def _scale_figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    points = res["points"]
    if not points:
        return []
    first, last = points[0], points[-1]
    span = f"{first['size']:.0e} → {last['size']:.0e} cases".replace("+0", "")
    rows = []
    for key, label in (
        ("intake_p50_ms", "intake p50 (ms)"),
        ("router_cpu_ms_per_delivery", "router CPU per delivery (ms)"),
        ("inbox_ms", "inbox query (ms)"),
        ("case_map_ms", "case-map query (ms)"),
    ):
        grew = scale.growth(points, key) if len(points) > 1 else None
        goal = "context" if key == "case_map_ms" or grew is None else f"≤ {GROWTH_GOAL:g}"
        rows.append(
            _figure(
                f"growth of {label}, {span}",
                f"{stats.median([r[key] for r in last['rounds']]):.2f}",
                f"{stats.median([r[key] for r in first['rounds']]):.2f}",
                grew,
                goal,
                None if goal == "context" or grew is None else grew["median"] <= GROWTH_GOAL,
            )
        )
    for name, mib in last["peak_mib"].items():
        rows.append(
            _figure(
                f"RSS {name} at {last['size']:,} cases",
                f"{mib:.0f} MiB",
                "-",
                None,
                f"≤ {report.RSS_BUDGET_MIB} MiB",
                mib <= report.RSS_BUDGET_MIB,
            )
        )
    return rows


def _figures(res: dict[str, Any]) -> list[dict[str, Any]]:
    makers = {
        "intake": _intake_figures,
        "router": _router_figures,
        "e2e": _e2e_figures,
        "paths": lambda res: paths.figures(res["runs"]),
        "scale": _scale_figures,
    }
    return [row for name, make in makers.items() if name in res for row in make(res[name])]


def main() -> None:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_before = os.getloadavg()
    began = time.monotonic()
    with target() as t:
        pids = t.service_pids()
        _say(f"stack ready: {t.ports}; service pids {pids}; phases {PHASES}")
        res: dict[str, Any] = {}
        peaks: dict[str, dict[str, float]] = {}
        totals: dict[str, dict[str, float]] = {}
        cpu: dict[str, dict[str, float]] = {}
        failed: dict[str, str] = {}
        phases: dict[str, Callable[[Target], dict[str, Any]]] = {
            "intake": bench_intake,
            "router": lambda t: bench_router(t, pids),
            "e2e": bench_e2e,
            # after e2e: the releases this phase decides leave the router work to do
            "paths": lambda t: bench_paths(t, pids),
            "scale": lambda t: bench_scale(t, pids),
        }
        with memory.Sampler(pids) as overall:
            for name, phase in phases.items():
                if name not in PHASES:
                    continue
                with memory.Sampler(pids) as sampled:
                    try:
                        res[name] = phase(t)
                    except Exception as exc:  # one failed phase must not lose the others
                        failed[name] = repr(exc)
                        _say(f"{name} phase failed: {exc!r}")
                        where = FAILED_LOGS / f"{run_id(LABEL or 'run')}-{name}"
                        kept = stack.keep_logs(t, where)
                        if kept is not None:
                            _say(f"{name} phase: the stack's logs are kept in {kept}")
                peaks[name], cpu[name] = sampled.peak_mib, sampled.cpu_seconds
                totals[name] = sampled.peak_total_mib
                _say(f"{name} phase: peak RSS {peaks[name]}, CPU s {cpu[name]}")
        results: dict[str, Any] = {
            "started_at": started,
            "label": LABEL,
            "runs": RUNS,
            "settings": {
                "phases": PHASES,
                "intake_seconds": INTAKE_SECONDS,
                "connections": CONNECTIONS,
                "router_responses": ROUTER_RESPONSES,
                "router_drain_responses": ROUTER_DRAIN_RESPONSES,
                "e2e_rates": E2E_RATES,
                "e2e_seconds": E2E_SECONDS,
                "scale": SCALE,
                "scale_responses": SCALE_RESPONSES,
                "intake_workers": int(os.environ.get("INTAKE_WORKERS", "1")),
                "token_cache_size": os.environ.get("OAUTH_TOKEN_CACHE_SIZE", "default"),
                "use_running": os.environ.get("BENCH_USE_RUNNING"),
            },
            "load_before": load_before,
            "failed_phases": failed,
            "memory": {
                "peak_mib": overall.peak_mib,
                "peak_total_mib": overall.peak_total_mib,
                "by_phase": peaks,
                "total_by_phase": totals,
                "cpu_seconds": cpu,
            },
            "figures": _figures(res),
        }
        if "intake" in res:
            results["intake"] = {k: [vars(r) for r in v] for k, v in res["intake"].items()}
            done = sum(r.requests for r in res["intake"]["target"])
            results["intake_cpu_ms_per_registration"] = round(
                1000 * cpu["intake"]["intake"] / max(done, 1), 2
            )
        if "paths" in res:
            results["paths"] = {
                **res["paths"],
                "runs": {k: [vars(r) for r in v] for k, v in res["paths"]["runs"].items()},
            }
        for name in ("router", "e2e", "scale"):
            if name in res:
                results[name] = res[name]
        if "router" in res:
            drains = len(res["router"]["runs"].get("drained", []))  # each drains a queue too
            made = (ROUTER_RESPONSES * RUNS + ROUTER_DRAIN_RESPONSES * drains + 10) * len(
                workload.RECIPIENTS
            )
            results["router_cpu_ms_per_delivery"] = round(
                1000 * cpu["router"]["router"] / max(made, 1), 2
            )
        if PROFILE:
            results["profiles"] = _profiles(t, pids)
    results["machine"] = report.machine()
    results["wall_seconds"] = round(time.monotonic() - began, 1)
    if "scale" in res and len(res["scale"]["points"]) > 0:
        results["scale_png"] = str(plot.scale_curve(res["scale"]["points"], LABEL))
    path = report.write(results, LABEL)
    print(report.table(results))
    print(f"\nresults: {Path(path).relative_to(report.ROOT)}; {results['wall_seconds']} s")


if __name__ == "__main__":
    main()
