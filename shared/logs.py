"""Logging set up once per process: JSON lines with request, case, response and delivery ids.

Personal data never reaches a log: the formatter drops any `extra` field whose name says it
holds disclosed or selector data, and callers log identifiers only.
"""

from __future__ import annotations

import contextvars
import logging
import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import orjson

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "request_id", default=None
)

# Fields that could carry personal data are never written, whoever passes them.
FORBIDDEN_FIELDS = frozenset(
    {
        "disclosures",
        "records",
        "selector",
        "selectors",
        "value",
        "phone",
        "ip",
        "email",
        "token",
        "secret",
        "authorization",
    }
)
_STANDARD = frozenset(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the ids that tie a line to a request or message."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            data["request_id"] = rid
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            data[key] = "[redacted]" if key in FORBIDDEN_FIELDS else value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(data, default=str).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {
            k: ("[redacted]" if k in FORBIDDEN_FIELDS else v)
            for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        }
        base = (
            f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        )
        tail = " ".join(f"{k}={v}" for k, v in extras.items())
        text = f"{base} {tail}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(*, level: str = "INFO", fmt: str = "json", service: str | None = None) -> None:
    """Install one handler on the root logger; uvicorn's access log is replaced by ours.

    When stderr is a file (the dev stack sends each service's output to one), it is made
    readable by its owner only before anything is logged to it.
    """
    restrict_to_owner(sys.stderr)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("uvicorn.access").disabled = True
    # No formatter here writes where a call came from, nor its thread or process: skip
    # collecting them for every record (the logging HOWTO's "Optimization"). Every request
    # logs a line, and the caller's frame walk alone cost about a third of it.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if service:
        old_factory = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = old_factory(*args, **kwargs)
            record.service = service
            return record

        logging.setLogRecordFactory(factory)


def restrict_to_owner(stream: Any) -> None:
    """chmod 0600 the regular file behind `stream`, if it is one; terminals and pipes stay."""
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # pytest's capture, a StringIO
        return
    if stat.S_ISREG(os.fstat(fd).st_mode):
        os.fchmod(fd, 0o600)


def open_private_log(path: Path) -> BinaryIO:
    """Open `path` for appending, readable by its owner only, creating it (and its folder).

    A service's log may hold what an exception path let through, so it is never left
    world-readable: a new file is created 0600 from its first byte, and an old one left by an
    earlier version is tightened to 0600 before anything more is written to it.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "ab")
