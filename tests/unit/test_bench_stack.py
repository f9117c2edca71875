"""A failed bench phase keeps the stack's logs, which the run deletes with its stack."""

from __future__ import annotations

from pathlib import Path

from bench.stack import Target, keep_logs


def test_a_failed_phase_keeps_the_services_and_postgresqls_logs(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "logs").mkdir(parents=True)
    (state / "logs" / "intake.log").write_text("intake line\n")
    (state / "pg").mkdir()
    (state / "pg" / "server.log").write_text("pg line\n")
    kept = keep_logs(Target(state, {}, "postgresql://x"), tmp_path / "kept")
    assert kept == tmp_path / "kept"
    assert (kept / "intake.log").read_text() == "intake line\n"
    assert (kept / "postgresql.log").read_text() == "pg line\n"


def test_a_stack_without_logs_in_its_state_folder_has_none_to_keep(tmp_path: Path) -> None:
    assert keep_logs(Target(tmp_path, {}, "postgresql://x"), tmp_path / "kept") is None
    assert not (tmp_path / "kept").exists()
