"""Running `caseshare up` as a user would, on free ports, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from caseshare.cli.client import dev_secret
from caseshare.stack.embedded import free_port


@dataclass
class RunningStack:
    state: Path
    ports: dict[str, int]
    proc: subprocess.Popen[bytes]

    @property
    def intake(self) -> str:
        return f"http://127.0.0.1:{self.ports['intake']}"

    @property
    def registry(self) -> str:
        return f"http://127.0.0.1:{self.ports['registry']}"

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.ports['issuer']}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['broker']}"

    def descendants(self) -> list[psutil.Process]:
        try:
            children: list[psutil.Process] = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        return children

    def token(self, client_id: str) -> str:
        """A fresh access token for a dev client, asked of the issuer over HTTP as a client
        would (client credentials), not by starting a CLI process per token."""
        answer = httpx.post(
            f"{self.issuer}/token",
            data={"grant_type": "client_credentials"},
            auth=(client_id, dev_secret(self.state, client_id)),
            timeout=30,
        )
        if answer.is_error:
            raise RuntimeError(
                f"the issuer answered {answer.status_code} to {client_id}'s token request;"
                f" its last errors:\n{self.log_errors('issuer')}"
            )
        token: str = answer.json()["access_token"]
        return token

    def log_errors(self, service: str, *, last: int = 5) -> str:
        """The last ERROR records of a service's log (which holds no request values), so that
        a failure on a shared stack explains itself in the test report."""
        path = self.state / "logs" / f"{service}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        errors = [line for line in lines if '"level":"ERROR"' in line.replace(" ", "")]
        return "\n".join(errors[-last:]) or "(none logged)"


def allocate_ports() -> dict[str, int]:
    return {
        name: free_port() for name in ("pg", "broker", "issuer", "intake", "registry", "router")
    }


def start(state: Path, ports: dict[str, int], *, timeout: float = 90) -> RunningStack:
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
        "ROUTER_REDRIVE_AFTER_SECONDS": "3",
        "ROUTER_RECONCILE_INTERVAL_SECONDS": "1",
    }
    env.pop("SELECTOR_HMAC_KEY", None)
    log = (state.parent / f"{state.name}-up.log").open("ab")
    with log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "caseshare.cli", "up"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    stack = RunningStack(state, ports, proc)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1) as client:
        for name in ("issuer", "intake", "registry", "router"):
            url = f"http://127.0.0.1:{ports[name]}/readyz"
            while True:
                if proc.poll() is not None:
                    tail = (state.parent / f"{state.name}-up.log").read_text()[-2000:]
                    raise RuntimeError(f"caseshare up exited with {proc.returncode}:\n{tail}")
                try:
                    if client.get(url).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{name} not ready after {timeout}s")
                time.sleep(0.2)
    return stack


def stop(stack: RunningStack, *, sig: int = signal.SIGTERM, timeout: float = 40) -> int:
    """Signal the supervisor and wait; returns its exit code."""
    stack.proc.send_signal(sig)
    return stack.proc.wait(timeout)
