"""Intake throughput: `POST /v1/cases` against the bare endpoint, driven by wrk.

wrk is the load generator because it is a small C program on one thread: on two cores shared
by client, server and PostgreSQL, a Python client would take a large and variable share of
the CPU and measure itself as much as the server. Both sides get the same wrk settings, the
same Lua script and the same bodies, and run back to back in each round.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from caseshare.stack.embedded import free_port

SCRIPT = Path(__file__).with_name("post_case.lua")
AUTHORITIES = ("authority-at", "authority-be", "authority-de", "authority-ee", "authority-es")


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: throughput and latency at a fixed number of connections."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    failures: int


def wrk_path() -> str:
    found = shutil.which("wrk")
    if found is None:
        sys.exit("wrk is not installed: `apt-get install -y wrk` (Debian), then run again")
    return found


def run_wrk(
    url: str,
    *,
    tokens: list[str],
    run_id: str,
    connections: int,
    seconds: float,
    script: Path = SCRIPT,
    extra_env: dict[str, str] | None = None,
) -> WrkResult:
    """Run wrk once on one thread; with the default script every request carries a fresh
    reference and selector (another script prints the same JSON line of results)."""
    env = {**os.environ, "BENCH_TOKENS": ",".join(tokens), "BENCH_RUN": run_id, **(extra_env or {})}
    out = subprocess.run(  # noqa: S603 - a fixed program and our own arguments
        [
            wrk_path(),
            "-t1",
            f"-c{connections}",
            f"-d{seconds:.0f}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 60,
    ).stdout
    line = next(x for x in reversed(out.splitlines()) if x.startswith("{"))
    data = json.loads(line)
    return WrkResult(
        rps=data["requests"] / (data["duration_us"] / 1e6),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        requests=data["requests"],
        failures=data["non_2xx"] + data["socket_errors"],
    )


class BareServer:
    """The baseline app in its own process, like intake is."""

    def __init__(self, dsn: str | None = None, *, extra_env: dict[str, str] | None = None) -> None:
        """`dsn`: also commit each body to PostgreSQL (the commit-ceiling context figure)."""
        self.port = free_port()
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "bench.bare", str(self.port), *([dsn] if dsn else [])],
            env={**os.environ, **(extra_env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"{self.url}/v1/cases", json={}, timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise TimeoutError("bare endpoint did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(15)
