"""`python -m bench.intake_cpu`: intake's CPU per registration, in process.

On a shared machine the stack bench's rates move with everyone else's load; the CPU intake
spends per registration moves much less. This builds intake's app as the service does (JSON
logging to a file, the metrics and request-context middleware, real token validation against
a local signing key) and calls it as an ASGI app, with no HTTP client or server in between,
against an embedded PostgreSQL: `POST /v1/cases` with the bench's bodies (a fresh reference
and selector each, five authorities' tokens in turn), CONCURRENCY requests in flight. It
reports the median CPU of this process per registration over ROUNDS rounds (the app, its
driver and the event loop), PostgreSQL's CPU per registration beside it (its processes),
and the wall rate. A connection listens on the outbox channel, as the relay does.
`INTAKE_CPU_APP=ceiling` (or `bare`) drives the commit ceiling's app (or the bare endpoint)
the same way, for scale.

`INTAKE_CPU_PROFILE=path` also records the measured rounds with py-spy (if installed) to
`path` (collapsed stacks) and prints the largest inclusive shares of our own code.

Tunables: INTAKE_CPU_REQUESTS (per round, default 800), INTAKE_CPU_ROUNDS (default 3),
INTAKE_CPU_CONCURRENCY (default 4).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import psutil
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey
from starlette.types import Message

from bench import bare, profile
from caseshare.stack.embedded import EmbeddedPostgres, free_port
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from services.registry import migrate
from services.registry.reference import seed
from shared import logs
from shared.db import create_engine, create_sessionmaker, transaction

REQUESTS = int(os.environ.get("INTAKE_CPU_REQUESTS", "800"))
ROUNDS = int(os.environ.get("INTAKE_CPU_ROUNDS", "3"))
CONCURRENCY = int(os.environ.get("INTAKE_CPU_CONCURRENCY", "4"))
ISSUER, AUDIENCE = "http://issuer.bench", "caseshare"
AUTHORITIES = ("at", "be", "de", "ee", "es")
KEY = ECKey.generate_key("P-256", auto_kid=True)


def _jwks(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/.well-known/oauth-authorization-server":
        return httpx.Response(200, json={"issuer": ISSUER, "jwks_uri": f"{ISSUER}/jwks"})
    return httpx.Response(200, json={"keys": [KEY.as_dict(private=False)]})


def _token(code: str) -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": f"authority-{code}",
        "client_id": f"authority-{code}",
        "scope": "cases:write cases:read inbox:read",
        "jurisdiction": code.upper(),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 3600,
    }
    header = {"alg": "ES256", "typ": "at+jwt", "kid": KEY.kid}
    return jwt.encode(header, claims, KEY, algorithms=["ES256"], default_type=None)


@contextlib.contextmanager
def _spy(out: Path) -> Iterator[None]:
    """py-spy on this process while the body runs, stopped (and its file written) at the end."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603 - a fixed program and our own arguments
        [
            *(exe, "record", "--pid", str(os.getpid()), "--rate", "200", "--format", "raw"),
            *("--nonblocking", "--output", str(out)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1)  # attached before the first measured request
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)
        summary = profile.summarize(out, top=40)
        print(f"busy {summary['busy_pct']}%", file=sys.__stdout__)
        for name, pct in summary["inclusive"]:
            print(f"  {pct:5.1f}  {name}", file=sys.__stdout__)


class Driver:
    """Calls the app as uvicorn would, one `POST /v1/cases` at a time per caller."""

    def __init__(self, app: FastAPI, run: str) -> None:
        self.app, self.run = app, run
        self.tokens = [f"Bearer {_token(code)}".encode() for code in AUTHORITIES]
        self.counter = itertools.count()
        self.failures = 0

    async def post(self) -> None:
        n = next(self.counter)
        body = (
            f'{{"reference":"B{self.run}-{n}","platform":"pixelgram",'
            f'"legal_basis":"Art. 18 CoE Convention","offence_categories":["fraud"],'
            f'"selectors":[{{"kind":"account_handle","value":"@b{self.run}_{n}"}}]}}'
        ).encode()
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/cases",
            "raw_path": b"/v1/cases",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"intake.bench"),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"authorization", self.tokens[n % len(self.tokens)]),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        sent = False
        status = 0

        async def receive() -> Message:
            nonlocal sent
            if sent:
                await asyncio.Event().wait()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        if status != 201:
            self.failures += 1

    async def many(self, n: int) -> None:
        remaining = iter(range(n))

        async def caller() -> None:
            for _ in remaining:
                await self.post()

        await asyncio.gather(*(caller() for _ in range(CONCURRENCY)))


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (PostgreSQL's postmaster and backends)."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = proc.cpu_times()
            total += times.user + times.system
    return total


async def _measure(url: str, pg_pid: int) -> None:
    engine = create_engine(url, pool_size=2)
    async with transaction(create_sessionmaker(engine)) as session:
        await seed.load(session)
    await engine.dispose()
    settings = IntakeSettings.model_validate(
        {
            "DATABASE_URL": url,
            "OAUTH_ISSUER": ISSUER,
            "OAUTH_AUDIENCE": AUDIENCE,
            "SELECTOR_HMAC_KEY": "bench-selector-key-" + "k" * 32,
            "WRITE_RATE_PER_SECOND": 1e9,
            "WRITE_RATE_BURST": 1_000_000_000,
        }
    )
    app = create_app(settings, http=httpx.AsyncClient(transport=httpx.MockTransport(_jwks)))
    if os.environ.get("INTAKE_CPU_APP") == "ceiling":  # the commit ceiling, for scale
        app = bare.create_app(url.replace("+asyncpg", ""))
    if os.environ.get("INTAKE_CPU_APP") == "bare":  # the bare endpoint, for scale
        app = bare.create_app(None)
    spy_to = os.environ.get("INTAKE_CPU_PROFILE")
    # The relay listens on the outbox channel in the real stack, and PostgreSQL's NOTIFY costs
    # what it costs when someone listens.
    listener = await asyncpg.connect(url.replace("+asyncpg", ""))
    await listener.add_listener("caseshare_outbox", lambda *_: None)
    async with app.router.lifespan_context(app):
        driver = Driver(app, uuid.uuid4().hex[:8])
        await driver.many(200)  # warm-up: pool, token cache, statement caches
        spying = _spy(Path(spy_to)) if spy_to else contextlib.nullcontext()
        rounds: list[tuple[float, float, float]] = []
        with spying:
            for _ in range(ROUNDS):
                cpu, wall, pg = time.process_time(), time.perf_counter(), _tree_cpu(pg_pid)
                await driver.many(REQUESTS)
                rounds.append(
                    (
                        (time.process_time() - cpu) * 1000 / REQUESTS,
                        REQUESTS / (time.perf_counter() - wall),
                        (_tree_cpu(pg_pid) - pg) * 1000 / REQUESTS,
                    )
                )
        load = os.getloadavg()
    await listener.close()
    cpu = statistics.median(r[0] for r in rounds)
    print(
        f"{cpu:.3f} ms CPU per registration (rounds: {', '.join(f'{r[0]:.3f}' for r in rounds)});"
        f" {statistics.median(r[1] for r in rounds):.0f} registrations/s wall;"
        f" PostgreSQL {statistics.median(r[2] for r in rounds):.3f} ms;"
        f" failures {driver.failures}; load average {load[0]:.2f} {load[1]:.2f}",
        file=sys.__stdout__,
    )


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="intake-cpu-") as tmp:
        log = Path(tmp) / "intake.log"
        with log.open("w") as stream:
            sys.stderr = stream  # the service logs JSON lines to its stderr, a file
            logs.configure(level="INFO", fmt="json", service="intake")
            pg = EmbeddedPostgres(Path(tmp) / "pg", free_port())
            pg.start()
            try:
                migrate.upgrade(pg.url)
                assert pg.proc is not None
                asyncio.run(_measure(pg.url, pg.proc.pid))
            finally:
                pg.stop()
                sys.stderr = sys.__stderr__
        print(f"log lines: {sum(1 for _ in log.open())}")


if __name__ == "__main__":
    main()
