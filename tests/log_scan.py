"""Looking for disclosed values in what the services logged: captured records and log files.

The README promises that logs never carry disclosed values. Tests that send distinctive values
(documentation-range IP addresses, phone numbers, selectors) scan every line the services wrote
for them afterwards: log records formatted as the services format them (exception text
included), and the log files of a stack they started.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

from shared.logs import JsonFormatter, TextFormatter


def formatted(records: Iterable[logging.LogRecord]) -> str:
    """Every record as both of the services' formatters would write it."""
    lines = []
    for record in records:
        lines.append(JsonFormatter().format(record))
        lines.append(TextFormatter().format(record))
    return "\n".join(lines)


def stack_log_files(state: Path) -> list[Path]:
    """The files a `caseshare up` stack under `state` logs to: its services, the broker,
    PostgreSQL and the supervisor's own output."""
    files = sorted((state / "logs").glob("*.log"))
    files += [state / "pg" / "server.log", state.parent / f"{state.name}-up.log"]
    return [f for f in files if f.exists()]


def leaks(text: str, values: Iterable[str]) -> list[str]:
    """The values found in `text`; phone numbers are also looked for without their `+`."""
    wanted = {v for value in values for v in (value, value.lstrip("+"))}
    return sorted(v for v in wanted if v in text)


def file_leaks(files: Iterable[Path], values: Iterable[str]) -> dict[str, list[str]]:
    """The values found in each file, by file name; empty when every file is clean."""
    found = {}
    for path in files:
        hits = leaks(path.read_text(errors="replace"), values)
        if hits:
            found[str(path)] = hits
    return found
