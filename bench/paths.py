"""The paths the requests and releases issues added: issuing a request, the platform's inbox
listing, and releasing a held delivery, each beside its baseline in the same round.

Every figure is driven by wrk with `replay.lua`, which sends the requests a file lists:
- **issuing a request** (`POST /v1/requests`): five authorities each hold one open case on
  the platform; the file has, per authority, a subscriber production order (no enforcing
  review) and a traffic order validated by a judge (notified to the platform's legal
  representative, BE, for review, except BE's own), sent round and round: a request needs no
  state but its case, so the same lines can be issued any number of times.
- **the platform's inbox** (`GET /v1/platform/requests`, its first page of 50, newest first),
  after the warm-up has issued well over a page of requests to the platform.
- **releasing a held delivery** (`POST /v1/releases/{id}`, decision `release`): each release
  can be decided once, so the state is made first through the API, as in production: every
  member and partner opens a case on the platform about one handle, the platform answers the
  originator's (AT's) case with a disclosure about that handle, and the router fans it out,
  holding every recipient but the originator (no release policy). The file lists each held
  release once; a round that reaches its end fails instead of measuring an idle server.

Baselines, measured by the same wrk in the same round (the order rotating): the commit ceiling
(`bench/bare.py PORT DSN`, one INSERT per request, the limit of one durable write per request)
for all three. The inbox page is a read, but not one that writes nothing: like every read of
case data it waits until its access-audit entry is committed (group-committed with the reads
beside it), so it is a durable path and the ceiling is its limit too. As context, the bare
endpoint answering the very bytes of the inbox page (`BENCH_BARE_PAGE`): what the page costs
beyond sending those bytes (the token, the audit entry, the query, 50 models rendered). The
issue sets no target for these paths: every row is context.

The stack runs with its per-client rate limits out of reach (`bench/stack.py`): one platform
or one originator is the whole load here. A running stack (`BENCH_USE_RUNNING=1`) needs
`WRITE_RATE_PER_SECOND` and `READ_RATE_PER_SECOND` raised likewise, or its 429s fail the phase.
"""

from __future__ import annotations

import asyncio
import json
import math
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil

from bench import intake, profile, stats, workload
from bench.stack import Target

REPLAY = Path(__file__).with_name("replay.lua")
PLATFORM = workload.PLATFORM
ORIGINATOR = "AT"
PAGE = 50
INBOX_PATH = f"/v1/platform/requests?limit={PAGE}"
RESPONSE_CONCURRENCY = 8
POOL_SAFETY = 4.0  # held releases per round: this many times the fastest rate seen x seconds
POOL_SLACK = 200
# wrk asks the script for one request before the run, to check it, and never sends it.
UNSENT = 1
Line = tuple[str, str, int, str]  # method, path, token index (1-based), body


@dataclass(frozen=True)
class Issuers:
    """Five authorities' tokens and the request lines they issue on their open cases."""

    tokens: list[str]
    lines: list[Line]


def write_lines(lines: Sequence[Line], where: Path) -> Path:
    """The file `replay.lua` reads: one request a line, tab-separated."""
    where.write_text("".join(f"{m}\t{p}\t{i}\t{b}\n" for m, p, i, b in lines))
    return where


def run(
    url: str,
    lines: Path,
    *,
    tokens: list[str],
    connections: int,
    seconds: float,
    cycle: bool,
) -> intake.WrkResult:
    return intake.run_wrk(
        url,
        tokens=tokens,
        run_id="-",
        connections=connections,
        seconds=seconds,
        script=REPLAY,
        extra_env={"BENCH_LINES": str(lines), "BENCH_CYCLE": "1" if cycle else "0"},
    )


def check(name: str, result: intake.WrkResult, *, listed: int | None = None) -> None:
    """Fail loudly: every measured request must have succeeded, and a list of one-shot
    requests (`listed` lines) must not have run out before the run's end."""
    if result.failures:
        raise RuntimeError(
            f"{name}: {result.failures} of {result.requests} requests failed (non-2xx or socket)"
        )
    if result.requests == 0:
        raise RuntimeError(f"{name}: no request completed")
    if listed is not None and result.requests >= listed - UNSENT:
        raise RuntimeError(
            f"{name}: all {listed} listed requests were used before the run ended: too few"
        )


def cpu_seconds(pid: int) -> float:
    """CPU used so far by a service: its process and any workers under it."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


def pool_needed(rates: Sequence[float], seconds: float) -> int:
    """Held releases one round needs: four times the fastest rate seen (rates move 2x between
    rounds on a shared machine) over the round, and slack."""
    return math.ceil(POOL_SAFETY * max(rates, default=0.0) * seconds) + POOL_SLACK


def _request_body(case_id: str, handle: str, code: str, *, traffic: bool) -> str:
    body: dict[str, Any] = {
        "case_id": case_id,
        "type": "production",
        "platform": PLATFORM,
        "categories": ["traffic"] if traffic else ["subscriber"],
        "selectors": [{"kind": "account_handle", "value": handle}],
        "legal_basis": "Art. 5 Regulation (EU) 2023/1543",
        "issuing_authority": f"Public prosecutor {code}",
    }
    if traffic:
        body["validated_by"] = f"Investigating judge {code}"
    return json.dumps(body, separators=(",", ":"))


async def _open_case(http: httpx.AsyncClient, token: str, code: str, handle: str) -> str:
    made = await http.post(
        "/v1/cases",
        headers=workload.bearer(token),
        json=workload.case_body(f"PATHS-{code}-{handle.rsplit('_', 1)[1]}", handle),
    )
    made.raise_for_status()
    case_id: str = made.json()["id"]
    return case_id


async def issuers(target: Target) -> Issuers:
    """One open case per authority about a fresh handle, and two request lines each."""
    handle = f"@paths_{uuid.uuid4().hex[:12]}"
    tokens, lines = [], []
    async with httpx.AsyncClient(base_url=target.url("intake"), timeout=30) as http:
        for index, client in enumerate(intake.AUTHORITIES, start=1):
            token = await asyncio.to_thread(target.token, client)
            code = client.rsplit("-", 1)[1].upper()
            case_id = await _open_case(http, token, code, handle)
            tokens.append(token)
            for traffic in (False, True):
                body = _request_body(case_id, handle, code, traffic=traffic)
                lines.append(("POST", "/v1/requests", index, body))
    return Issuers(tokens, lines)


async def inbox_page(target: Target, token: str) -> bytes:
    """The platform's first inbox page as intake sends it; it must be a full page."""
    async with httpx.AsyncClient(base_url=target.url("intake"), timeout=30) as http:
        page = await http.get(INBOX_PATH, headers=workload.bearer(token))
    page.raise_for_status()
    if len(page.json()["items"]) < PAGE:
        raise RuntimeError("the platform's inbox holds less than one page of requests")
    return page.content


class HeldReleases:
    """Held deliveries made through the API for the originator to release, each used once."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.dsn = target.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.handle = f"@held_{uuid.uuid4().hex[:12]}"
        self.requesting_case = ""
        self.unused: list[str] = []
        self.per_response = 0

    async def open_cases(self) -> None:
        """Every member and partner opens a case about the handle (an associated third
        country would need a coordinator); the originator's is answered."""
        conn = await asyncpg.connect(self.dsn)
        try:
            rows = await conn.fetch(
                "SELECT code FROM jurisdictions WHERE status IN ('member', 'partner')"
            )
            codes = [r["code"] for r in rows]
        finally:
            await conn.close()
        async with httpx.AsyncClient(base_url=self.target.url("intake"), timeout=30) as http:
            for code in sorted(codes):
                token = await asyncio.to_thread(self.target.token, f"authority-{code.lower()}")
                case_id = await _open_case(http, token, code, self.handle)
                if code == ORIGINATOR:
                    self.requesting_case = case_id

    def _response(self) -> dict[str, Any]:
        body = workload.response_body(self.handle)
        body["requesting_case_id"] = self.requesting_case
        return body

    async def add(self, responses: int) -> int:
        """Submit `responses` answers, wait for their fan-out, keep their held releases."""
        token = await asyncio.to_thread(self.target.token, f"platform-{PLATFORM}")
        gate = asyncio.Semaphore(RESPONSE_CONCURRENCY)
        async with httpx.AsyncClient(base_url=self.target.url("intake"), timeout=30) as http:

            async def one() -> uuid.UUID:
                async with gate:
                    made = await http.post(
                        "/v1/responses", headers=workload.bearer(token), json=self._response()
                    )
                    made.raise_for_status()
                    return uuid.UUID(made.json()["id"])

            ids = await asyncio.gather(*(one() for _ in range(responses)))
        held = await self._held_after_fanout(list(ids))
        self.unused.extend(held)
        if responses:
            self.per_response = max(self.per_response, len(held) // responses)
        return len(held)

    async def _held_after_fanout(self, ids: list[uuid.UUID], within: float = 300) -> list[str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + within
            while await conn.fetchval(
                "SELECT count(*) FROM responses WHERE id = ANY($1) AND fanout_state = 'received'",
                ids,
            ):
                if loop.time() > deadline:
                    raise RuntimeError(f"{len(ids)} responses not fanned out within {within} s")
                await asyncio.sleep(0.2)
            rows = await conn.fetch(
                "SELECT id FROM releases WHERE response_id = ANY($1) AND state = 'held'"
                " AND originator = $2 ORDER BY created_at, id",
                ids,
                ORIGINATOR,
            )
        finally:
            await conn.close()
        if not rows:
            raise RuntimeError("the fan-out held no delivery for the originator to release")
        return [str(r["id"]) for r in rows]

    async def top_up(self, needed: int) -> None:
        while len(self.unused) < needed:
            missing = needed - len(self.unused)
            await self.add(max(1, math.ceil(missing / max(self.per_response, 1))))

    def take(self, where: Path) -> tuple[Path, int]:
        """Write every unused release as a line and hand them all to one run."""
        lines = [
            ("POST", f"/v1/releases/{rid}", 1, '{"decision":"release"}') for rid in self.unused
        ]
        self.unused = []
        return write_lines(lines, where), len(lines)


def measure(
    target: Target,
    *,
    runs: int,
    seconds: float,
    connections: int,
    say: Callable[[str], None],
    intake_pid: int,
    profile_prefix: Path | None = None,
) -> dict[str, Any]:
    """`runs` rounds of the three paths and their two baselines, in rotating order; with
    intake's CPU per request of each path (its process tree, over that path's run only).
    `profile_prefix`: then one more, unmeasured run of each path with intake under py-spy,
    the collapsed stacks written to `<prefix>-<path>.txt` and summarised in the result."""
    dsn = target.database_url.replace("postgresql+asyncpg://", "postgresql://", 1)
    out: dict[str, list[intake.WrkResult]] = {
        "issue": [],
        "release": [],
        "inbox": [],
        "commit": [],
        "bare_inbox": [],
    }
    cpu_ms: dict[str, list[float]] = {"issue": [], "release": [], "inbox": []}
    profiles: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="caseshare-paths-") as tmp:
        work = Path(tmp)
        who = asyncio.run(issuers(target))
        issue_lines = write_lines(who.lines, work / "issue.tsv")
        commit = intake.BareServer(dsn)
        bare: intake.BareServer | None = None
        held = HeldReleases(target)
        try:
            # warm-up: first requests, JWKS, pools; issuing fills the platform's inbox
            issued = 0
            while issued <= PAGE:
                warm = run(
                    target.url("intake"),
                    issue_lines,
                    tokens=who.tokens,
                    connections=4,
                    seconds=2,
                    cycle=True,
                )
                check("issue warm-up", warm)
                issued += warm.requests
            platform_token = target.token(f"platform-{PLATFORM}")
            page = asyncio.run(inbox_page(target, platform_token))
            (work / "page.json").write_bytes(page)
            bare = intake.BareServer(extra_env={"BENCH_BARE_PAGE": str(work / "page.json")})
            inbox_lines = write_lines([("GET", INBOX_PATH, 1, "")], work / "inbox.tsv")
            asyncio.run(held.open_cases())
            asyncio.run(held.add(10))
            say(
                f"paths: {len(who.lines)} request lines, inbox page {len(page)} bytes, "
                f"{held.per_response} held releases per response"
            )
            lines, listed = held.take(work / "release-warm.tsv")
            warm_release = run(
                target.url("intake"),
                lines,
                tokens=[target.token(f"authority-{ORIGINATOR.lower()}")],
                connections=4,
                seconds=2,
                cycle=False,
            )
            check("release warm-up", warm_release)  # may use up its list: it only warms
            for url in (commit.url, bare.url, target.url("intake")):
                intake.run_wrk(url, tokens=who.tokens, run_id="w", connections=4, seconds=2)
            rates = [warm_release.rps, warm.rps]  # releasing costs about what issuing does
            for i in range(runs):
                asyncio.run(held.top_up(pool_needed(rates, seconds)))
                release_lines, listed = held.take(work / f"release-{i}.tsv")
                platform_token = target.token(f"platform-{PLATFORM}")
                tokens = [target.token(client) for client in intake.AUTHORITIES]
                plan: dict[str, tuple[str, Path, list[str], bool]] = {
                    "issue": (target.url("intake"), issue_lines, tokens, True),
                    "commit": (commit.url, intake.SCRIPT, tokens, True),
                    "release": (
                        target.url("intake"),
                        release_lines,
                        [target.token(f"authority-{ORIGINATOR.lower()}")],
                        False,
                    ),
                    "inbox": (target.url("intake"), inbox_lines, [platform_token], True),
                    "bare_inbox": (bare.url, inbox_lines, [platform_token], True),
                }
                names = list(plan)
                shift = i % len(names)
                for name in names[shift:] + names[:shift]:
                    url, lines, toks, cycle = plan[name]
                    cpu_before = cpu_seconds(intake_pid)
                    if name == "commit":  # the ceiling as every phase measures it
                        result = intake.run_wrk(
                            url,
                            tokens=toks,
                            run_id=f"paths{uuid.uuid4().hex[:10]}",
                            connections=connections,
                            seconds=seconds,
                        )
                    else:
                        result = run(
                            url,
                            lines,
                            tokens=toks,
                            connections=connections,
                            seconds=seconds,
                            cycle=cycle,
                        )
                    check(
                        f"paths {name} round {i + 1}",
                        result,
                        listed=listed if name == "release" else None,
                    )
                    out[name].append(result)
                    if name in cpu_ms:
                        used = cpu_seconds(intake_pid) - cpu_before
                        cpu_ms[name].append(round(1000 * used / result.requests, 2))
                rates.append(out["release"][-1].rps)
                say(
                    f"paths round {i + 1}: issue {out['issue'][-1]}, release {out['release'][-1]}"
                    f" vs commit ceiling {out['commit'][-1]}; inbox {out['inbox'][-1]} vs bare"
                    f" {out['bare_inbox'][-1]}; intake CPU ms per request"
                    f" { {k: v[-1] for k, v in cpu_ms.items()} }"
                )
            if profile_prefix is not None:
                asyncio.run(held.top_up(pool_needed(rates, seconds)))
                release_lines, _ = held.take(work / "release-profile.tsv")
                for name in ("issue", "release", "inbox"):
                    url, lines, toks, cycle = plan[name]
                    if name == "release":
                        lines = release_lines
                    out_file = Path(f"{profile_prefix}-{name}.txt")
                    with profile.spy(intake_pid, out_file, seconds=seconds):
                        run(
                            url,
                            lines,
                            tokens=toks,
                            connections=connections,
                            seconds=seconds,
                            cycle=cycle,
                        )
                    profiles[name] = profile.summarize(out_file)
        finally:
            commit.stop()
            if bare is not None:
                bare.stop()
    return {
        "profiles": profiles,
        "runs": out,
        "intake_cpu_ms_per_request": cpu_ms,
        "page_bytes": len(page),
        "held_per_response": held.per_response,
    }


def _wrk(rs: Sequence[intake.WrkResult], unit: str) -> str:
    med = stats.median
    return (
        f"{med([r.rps for r in rs]):.0f} {unit}/s (p50 {med([r.p50_ms for r in rs]):.1f} / "
        f"p99 {med([r.p99_ms for r in rs]):.1f} ms)"
    )


def figures(runs: dict[str, Sequence[intake.WrkResult]]) -> list[dict[str, Any]]:
    """The table's rows: each path's rate over its baseline's, per round. The issue sets no
    target for these paths, so every row is context (no verdict)."""

    def rps(name: str) -> list[float]:
        return [r.rps for r in runs[name]]

    rows = [
        ("issuing a request vs commit ceiling", "issue", "requests", "commit", "req"),
        ("releasing a held delivery vs commit ceiling", "release", "releases", "commit", "req"),
        ("platform inbox page vs commit ceiling", "inbox", "pages", "commit", "req"),
        ("platform inbox page vs bare endpoint, same bytes", "inbox", "pages", "bare_inbox", "req"),
    ]
    return [
        {
            "name": name,
            "target": _wrk(runs[mine], unit),
            "baseline": _wrk(runs[theirs], base_unit),
            "ratio": stats.ratio(rps(mine), rps(theirs)),
            "goal": "context",
            "met": None,
        }
        for name, mine, unit, theirs, base_unit in rows
    ]
