"""`caseshare up`: the whole embedded system in one foreground command.

It starts PostgreSQL (data kept under the state directory, so a second run reuses it) and the
Tansu broker, migrates and seeds, then runs the issuer and the three services as separate
processes, restarting one that crashes. Ctrl-C or SIGTERM stops the services first, then the
broker, then PostgreSQL with a fast (clean) shutdown: nothing is left running.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

from caseshare.stack.embedded import EmbeddedPostgres, EmbeddedTansu
from shared.files import write_private

console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

PG_PORT = 54329
BROKER_PORT = 9092
SERVICES = (
    ("issuer", "services.issuer", "ISSUER_PORT", 8003),
    ("intake", "services.intake", "INTAKE_PORT", 8000),
    ("registry", "services.registry", "REGISTRY_PORT", 8001),
    ("router", "services.router", "ROUTER_PORT", 8002),
)
HEALTH_TIMEOUT = float(os.environ.get("CASESHARE_START_TIMEOUT", "120"))
STOP_TIMEOUT = 15.0


def load_or_create_secrets(state: Path) -> dict[str, str]:
    """Random secrets for this installation, made once and kept in the state directory."""
    path = state / "secrets.env"
    values: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            key, _, value = line.partition("=")
            if key and value:
                values[key] = value
    if "SELECTOR_HMAC_KEY" not in values:
        values["SELECTOR_HMAC_KEY"] = secrets.token_urlsafe(48)
        write_private(path, "".join(f"{k}={v}\n" for k, v in values.items()))
    return values


@dataclass
class Child:
    name: str
    module: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0


@dataclass
class Stack:
    """The embedded servers and the service processes, owned by one supervisor."""

    state: Path
    env: dict[str, str]
    postgres: EmbeddedPostgres
    broker: EmbeddedTansu
    children: list[Child] = field(default_factory=list)

    def spawn(self, child: Child) -> None:
        log = (self.state / "logs" / f"{child.name}.log").open("ab")
        with log:
            child.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
                [sys.executable, "-m", child.module],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        child.started_at = time.monotonic()

    def stop(self) -> None:
        for child in self.children:
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in self.children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                console.print(f"[yellow]{child.name} did not stop in time; killing it[/]")
                os.killpg(child.proc.pid, signal.SIGKILL)
                child.proc.wait(5)
        self.broker.stop()
        self.postgres.stop()


def build_env(
    state: Path, secrets_env: dict[str, str], pg: EmbeddedPostgres, broker: EmbeddedTansu
) -> dict[str, str]:
    env = dict(os.environ)
    env.update(secrets_env)
    env.setdefault("CASESHARE_STATE_DIR", str(state))
    env["DATABASE_URL"] = pg.url
    env["KAFKA_BOOTSTRAP_SERVERS"] = broker.bootstrap
    env.setdefault("OAUTH_ISSUER", "http://127.0.0.1:8003")
    env.setdefault("LOG_FORMAT", "json")
    # a webhook receiver on this machine may be plain http; production keeps https only
    env.setdefault("WEBHOOKS_ALLOW_INSECURE_LOOPBACK", "true")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


async def prepare_database(url: str, state: Path, *, registry_port: int = 8001) -> dict[str, str]:
    """Migrate, load reference data, demo keys, dev clients and the dev coordinator account;
    returns the dev secrets."""
    import services.issuer.clients as issuer_clients
    import services.issuer.keys as issuer_keys
    import services.issuer.users as issuer_users
    from services.registry import migrate
    from services.registry.reference import seed
    from services.registry.reference.loader import load_reference
    from shared.db import create_engine, create_sessionmaker, transaction

    await migrate.upgrade_async(url)
    engine = create_engine(url, pool_size=2)
    try:
        sm = create_sessionmaker(engine)
        data = load_reference()
        async with transaction(sm) as session:
            await seed.load(session, data)
            await seed.ensure_demo_keys(session, state / "keys")
            await issuer_keys.ensure_active_key(session)
            dev: dict[str, str] = await issuer_clients.ensure_dev_clients(
                session,
                jurisdictions=[j.code for j in data.jurisdictions],
                platforms=[p.slug for p in data.platforms],
                secrets_file=state / "dev-clients.json",
            )
            await issuer_clients.ensure_dashboard_client(
                session,
                redirect_uris=[
                    f"http://{host}:{registry_port}/dashboard/callback"
                    for host in ("127.0.0.1", "localhost")
                ],
            )
            await issuer_users.ensure_dev_users(session, users_file=state / "dev-users.json")
            return dev
    finally:
        await engine.dispose()


class Interrupted(Exception):
    """A stop signal arrived while starting up."""


def wait_healthy(
    children: list[Child], stopping: list[bool], timeout: float = HEALTH_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    pending = {c.name: c for c in children}
    with httpx.Client(timeout=1.0) as client:
        while pending and time.monotonic() < deadline:
            if stopping:
                raise Interrupted
            for name, child in list(pending.items()):
                if child.proc and child.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited during start-up; see its log")
                try:
                    if client.get(f"http://127.0.0.1:{child.port}/healthz").status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
    if pending:
        raise TimeoutError(f"not healthy after {timeout:.0f}s: {', '.join(sorted(pending))}")


def print_summary(stack: Stack) -> None:
    table = Table(title="caseshare is running", show_lines=False)
    table.add_column("component", no_wrap=True)
    table.add_column("address", overflow="fold")
    table.add_column("log", overflow="fold")
    table.add_row(
        "PostgreSQL",
        stack.postgres.url.replace("+asyncpg", ""),
        str(stack.postgres.data_dir / "server.log"),
    )
    table.add_row("broker (Tansu)", stack.broker.bootstrap, str(stack.state / "logs/tansu.log"))
    for child in stack.children:
        table.add_row(
            child.name,
            f"http://127.0.0.1:{child.port}",
            str(stack.state / "logs" / f"{child.name}.log"),
        )
    console.print(table)
    console.print(
        "Get a token:  [bold].venv/bin/caseshare token authority-fr[/]   "
        "(dev clients: authority-<iso>, platform-<slug>, coordinator, admin)"
    )
    registry = next((c for c in stack.children if c.name == "registry"), None)
    if registry is not None:
        console.print(
            f"Dashboard:    [bold]http://127.0.0.1:{registry.port}/dashboard[/]   "
            f"(sign in as coordinator@caseshare.test; password in {stack.state / 'dev-users.json'})"
        )
    console.print("Stop with Ctrl-C.")


def supervise(stack: Stack, stopping: list[bool]) -> None:
    """Restart a crashed service with backoff, until asked to stop."""
    while not stopping:
        for child in stack.children:
            if child.proc is None or child.proc.poll() is None:
                continue
            code = child.proc.returncode
            uptime = time.monotonic() - child.started_at
            child.restarts = 0 if uptime > 60 else child.restarts + 1
            delay = min(2**child.restarts, 30)
            console.print(f"[red]{child.name} exited ({code}); restarting in {delay}s[/]")
            time.sleep(delay)
            if not stopping:
                stack.spawn(child)
        time.sleep(0.5)


def up(state: Path) -> int:
    state = state.resolve()
    (state / "logs").mkdir(parents=True, exist_ok=True)
    stopping: list[bool] = []

    def on_signal(_signum: int, _frame: object) -> None:
        stopping.append(True)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pg = EmbeddedPostgres(state / "pg", int(os.environ.get("CASESHARE_PG_PORT", PG_PORT)))
    broker = EmbeddedTansu(
        int(os.environ.get("CASESHARE_BROKER_PORT", BROKER_PORT)),
        log_path=state / "logs" / "tansu.log",
    )
    stack = Stack(state, {}, pg, broker)
    try:
        console.print("starting PostgreSQL and the broker ...")
        pg.start()
        broker.start()
        stack.env = build_env(state, load_or_create_secrets(state), pg, broker)
        os.environ.update({k: stack.env[k] for k in ("SELECTOR_HMAC_KEY",)})
        console.print("migrating and loading reference data ...")
        registry_port = int(stack.env.get("REGISTRY_PORT", 8001))
        asyncio.run(prepare_database(pg.url, state, registry_port=registry_port))
        for name, module, port_var, default in SERVICES:
            port = int(stack.env.get(port_var, default))
            child = Child(name, module, port)
            stack.children.append(child)
            stack.spawn(child)
        wait_healthy(stack.children, stopping)
        print_summary(stack)
        supervise(stack, stopping)
        return 0
    except Interrupted:
        return 0
    except Exception as exc:
        console.print(f"[red]caseshare up failed: {exc}[/]")
        return 1
    finally:
        console.print("stopping ...")
        stack.stop()
        console.print("stopped.")
