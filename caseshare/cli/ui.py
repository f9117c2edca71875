"""What every command shares: the consoles, the global settings, and turning failures into
exit codes.

Output meant for pipes (ids, `--json`) goes to stdout; tables, panels and progress go to stdout
too, but every error goes to stderr so scripts can tell them apart. `CaseshareGroup` is the
root command group: it is the one place where a `CliError` or an unexpected exception becomes
a message and an exit code, so commands just raise.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Coroutine
from datetime import datetime
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from typer import _click
from typer.core import TyperGroup

from caseshare.cli.client import CliError, ExitCode, Settings

T = TypeVar("T")

# Wide enough for uuids in tables when the output is a file or a pipe (tests, CI logs).
_WIDTH = None if sys.stdout.isatty() else int(os.environ.get("COLUMNS", "160"))
console = Console(width=_WIDTH, highlight=False)
errors = Console(stderr=True, width=_WIDTH, highlight=False)

STATE_STYLES = {
    "pending": "yellow",
    "published": "cyan",
    "acknowledged": "green",
    "failed": "bold red",
    "open": "green",
    "suspended": "yellow",
    "closed": "dim",
    "received": "yellow",
    "routed": "cyan",
    "completed": "green",
}


class CaseshareGroup(TyperGroup):
    """The root group: expected failures print one line; only bugs say "unexpected"."""

    def invoke(self, ctx: _click.Context) -> Any:  # typer's vendored click
        try:
            return super().invoke(ctx)
        except CliError as exc:
            errors.print(f"[bold red]error:[/] {escape(exc.message)}")
            raise typer.Exit(int(exc.code)) from None
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise  # usage errors (exit 2), explicit exits and aborts keep their meaning
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:
            if os.environ.get("CASESHARE_DEBUG"):
                raise
            errors.print(
                f"[bold red]unexpected error:[/] {type(exc).__name__}: {escape(str(exc))} "
                "(set CASESHARE_DEBUG=1 for the traceback)"
            )
            raise typer.Exit(int(ExitCode.UNEXPECTED)) from None


def settings(ctx: typer.Context) -> Settings:
    """The global options, set by the root callback (defaults when a command runs alone)."""
    obj = ctx.find_root().obj
    return obj if isinstance(obj, Settings) else Settings()


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's async body; the event loop lives exactly as long as the command."""
    return asyncio.run(coro)


def print_json(value: Any) -> None:
    """Machine-readable output for scripts: plain JSON on stdout, no colours."""
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=True) + "\n")
    sys.stdout.flush()


def when(value: str | datetime | None) -> str:
    """A timestamp as a short UTC time, or a dash when the event has not happened."""
    if value is None:
        return "-"
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def styled(state: str) -> str:
    style = STATE_STYLES.get(state, "")
    return f"[{style}]{escape(state)}[/]" if style else escape(state)
