"""The system under test: the embedded stack on free ports, or one that is already running.

The bench starts `caseshare up` with the services' production defaults (unlike the e2e tests,
which shorten the reconciler's timers: a re-drive racing the consumer would double the
router's work and distort its figure), except the per-client rate limits, set out of reach.
`BENCH_USE_RUNNING=1` measures a stack started with `make run` instead, at the addresses its
environment variables name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from caseshare.stack.embedded import EmbeddedPostgres
from caseshare.stack.supervised import RunningStack as _Supervised
from caseshare.stack.supervised import allocate_ports, stop

SERVICES = ("issuer", "intake", "registry", "router")
BENCH_RATE_LIMIT = 1_000_000  # requests/s per client: see `_start`


@dataclass(frozen=True)
class Target:
    """Where the stack's parts listen, and where its dev client secrets are."""

    state: Path
    ports: dict[str, int]
    database_url: str
    topic_prefix: str = "caseshare"

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    def token(self, client_id: str) -> str:
        """A fresh access token for a dev client (client_secret_basic, like the CLI)."""
        secret = json.loads((self.state / "dev-clients.json").read_text())[client_id]
        answer = httpx.post(
            f"{self.url('issuer')}/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, secret),
            timeout=10,
        )
        answer.raise_for_status()
        token: str = answer.json()["access_token"]
        return token

    def service_pids(self, *, extra: tuple[str, ...] = ()) -> dict[str, int]:
        """The process listening on each service's port (other stacks may share the host);
        `extra` names more ports to look up, such as "pg" for PostgreSQL's postmaster."""
        by_port = {self.ports[name]: name for name in (*SERVICES, *extra)}
        holders: dict[str, set[int]] = {}
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.pid is not None:
                name = by_port.get(conn.laddr.port)
                if name is not None:
                    holders.setdefault(name, set()).add(conn.pid)
        # With several uvicorn workers every worker holds the socket: the service is the tree
        # under their supervisor.
        return {name: _root(pids) for name, pids in holders.items()}


def _root(pids: set[int]) -> int:
    """The service's own process: the workers' common parent (uvicorn's supervisor, which
    need not hold the socket itself), else the one holder whose parent is not a holder."""
    parents: set[int] = set()
    for pid in pids:
        try:
            parents.add(int(psutil.Process(pid).ppid()))
        except psutil.Error:
            continue
    if len(pids) > 1 and len(parents) == 1:
        return parents.pop()
    for pid in sorted(pids):
        try:
            if psutil.Process(pid).ppid() not in pids:
                return pid
        except psutil.Error:
            continue
    return min(pids)


def _running() -> Target:
    ports = {
        "broker": int(os.environ.get("CASESHARE_BROKER_PORT", 9092)),
        "pg": int(os.environ.get("CASESHARE_PG_PORT", 54329)),
        "issuer": int(os.environ.get("ISSUER_PORT", 8003)),
        "intake": int(os.environ.get("INTAKE_PORT", 8000)),
        "registry": int(os.environ.get("REGISTRY_PORT", 8001)),
        "router": int(os.environ.get("ROUTER_PORT", 8002)),
    }
    state = Path(os.environ.get("CASESHARE_STATE_DIR", ".state"))
    url = os.environ.get("DATABASE_URL") or EmbeddedPostgres(state / "pg", ports["pg"]).url
    return Target(state, ports, url, os.environ.get("KAFKA_TOPIC_PREFIX", "caseshare"))


def _start(state: Path, ports: dict[str, int], timeout: float = 120) -> _Supervised:
    env = {
        **os.environ,
        "CASESHARE_STATE_DIR": str(state),
        "CASESHARE_PG_PORT": str(ports["pg"]),
        "CASESHARE_BROKER_PORT": str(ports["broker"]),
        "ISSUER_PORT": str(ports["issuer"]),
        "INTAKE_PORT": str(ports["intake"]),
        "REGISTRY_PORT": str(ports["registry"]),
        "ROUTER_PORT": str(ports["router"]),
        "OAUTH_ISSUER": f"http://127.0.0.1:{ports['issuer']}",
    }
    for inherited in ("SELECTOR_HMAC_KEY", "DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):
        env.pop(inherited, None)
    # The per-client rate limits guard against one runaway client, and a benchmark of one path
    # is exactly that: a platform reading its inbox, an originator deciding its releases, as
    # fast as they can. Out of reach here, so a figure measures the path and not the bucket;
    # the check itself still runs on every request.
    for limit in ("WRITE_RATE_PER_SECOND", "READ_RATE_PER_SECOND"):
        env.setdefault(limit, str(BENCH_RATE_LIMIT))
    with (state.parent / "up.log").open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "caseshare.cli", "up"], env=env, stdout=log, stderr=log
        )
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:
        for name in SERVICES:
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"caseshare up exited with {proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    ready = client.get(f"http://127.0.0.1:{ports[name]}/readyz")
                    if ready.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    proc.terminate()
                    raise TimeoutError(f"{name} not ready after {timeout:.0f}s")
                time.sleep(0.2)
    return _Supervised(state, ports, proc)


def keep_logs(t: Target, where: Path) -> Path | None:
    """Copy the stack's service logs and PostgreSQL's log to `where` (a failed phase's
    evidence: the bench's own stack, and its logs, are deleted when the run ends)."""
    logs = t.state / "logs"
    if not logs.is_dir():
        return None  # a stack that keeps no logs in its state folder
    shutil.copytree(logs, where, dirs_exist_ok=True)
    server_log = t.state / "pg" / "server.log"
    if server_log.is_file():
        shutil.copy2(server_log, where / "postgresql.log")
    return where


@contextlib.contextmanager
def target() -> Iterator[Target]:
    """The stack to measure, stopped afterwards if the bench started it."""
    if os.environ.get("BENCH_USE_RUNNING") == "1":
        yield _running()
        return
    with tempfile.TemporaryDirectory(prefix="caseshare-bench-") as tmp:
        ports = allocate_ports()
        supervised = _start(Path(tmp) / "state", ports)
        try:
            url = EmbeddedPostgres(Path(tmp) / "state" / "pg", ports["pg"]).url
            yield Target(Path(tmp) / "state", ports, url)
        finally:
            stop(supervised)
