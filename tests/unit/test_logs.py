"""Structured logging: one JSON object per line, request ids attached, personal data dropped."""

from __future__ import annotations

import json
import logging
import stat
import subprocess
import sys
from pathlib import Path

from shared import logs

ROOT = Path(__file__).resolve().parents[2]


def _format(**extra: object) -> dict[str, object]:
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": "m", **extra})
    line = logs.JsonFormatter().format(record)
    parsed: dict[str, object] = json.loads(line)
    return parsed


def test_ids_pass_through_and_personal_fields_are_redacted() -> None:
    out = _format(
        case_id="c-1",
        delivery_id="d-1",
        phone="+33612345678",
        disclosures=[{"value": "203.0.113.7"}],
        value="203.0.113.7",
    )
    assert out["case_id"] == "c-1"
    assert out["delivery_id"] == "d-1"
    assert out["phone"] == out["disclosures"] == out["value"] == "[redacted]"
    assert "203.0.113.7" not in json.dumps(out)


def test_request_id_comes_from_the_context() -> None:
    token = logs.request_id_var.set("req-42")
    try:
        assert _format()["request_id"] == "req-42"
    finally:
        logs.request_id_var.reset(token)


def test_log_files_are_created_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "intake.log"
    with logs.open_private_log(path) as out:
        out.write(b"first\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_an_old_world_readable_log_is_tightened_and_appended_to(tmp_path: Path) -> None:
    path = tmp_path / "router.log"
    path.write_bytes(b"old\n")
    path.chmod(0o644)
    with logs.open_private_log(path) as out:
        out.write(b"new\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes() == b"old\nnew\n"


def test_a_service_makes_the_file_it_logs_to_owner_only(tmp_path: Path) -> None:
    """The dev stack opens each service's log; the service tightens it before logging."""
    path = tmp_path / "intake.log"
    path.write_bytes(b"")
    path.chmod(0o644)
    code = "from shared import logs; import logging; logs.configure(); logging.info('up')"
    with path.open("ab") as out:
        subprocess.run([sys.executable, "-c", code], stderr=out, check=True, cwd=ROOT, timeout=30)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b'"up"' in path.read_bytes()
