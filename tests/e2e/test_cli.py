"""The `caseshare` CLI, the demo, the example consumer and the README's kcat recipe, end to end.

One stack (as `caseshare up` runs it) serves the whole module; every test works in its own
jurisdiction so that none sees another's cases or deliveries.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from caseshare.stack import supervised as stack_mod
from tests.e2e.cli_support import (
    call,
    cli,
    deliver,
    delivery_state,
    response_body,
    subprocess_env,
    tag,
)

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
ROOT = Path(__file__).resolve().parents[2]


def register_args(reference: str, *extra: str) -> list[str]:
    return [
        "cases", "register", "--as", "authority-at", "--platform", "telegram",
        "--reference", reference, "--legal-basis", "Art. 18", "--offence", "fraud",
        *extra,
    ]  # fmt: skip


def test_cases_register_show_list(running: stack_mod.RunningStack) -> None:
    ref = f"AT-{tag()}"
    made = cli(running, *register_args(ref, "--selector", "group_id=at_chat", "--json"))
    assert made.exit_code == 0, made.output
    case = json.loads(made.stdout)
    assert case["opened_by"] == "AT"
    again = cli(running, *register_args(f"{ref}-2", "--selector", "account_handle=@at_x"))
    assert again.exit_code == 0, again.output
    assert "registered" in again.stdout
    assert "@a***" in again.stdout  # selectors come back masked only

    shown = cli(running, "cases", "show", case["id"], "--as", "authority-at")
    assert shown.exit_code == 0, shown.output
    assert ref in shown.stdout
    listed = cli(running, "cases", "list", "--as", "authority-at", "--all")
    assert listed.exit_code == 0, listed.output
    assert case["id"] in listed.stdout
    one = cli(running, "cases", "list", "--as", "authority-at", "--limit", "1")
    assert "more cases exist" in one.stdout

    hidden = cli(running, "cases", "show", case["id"], "--as", "authority-de")
    assert hidden.exit_code == 1
    assert "Not found (404)" in hidden.stderr
    assert "Traceback" not in hidden.output


def test_expected_failures_give_one_line_and_their_exit_code(
    running: stack_mod.RunningStack, tmp_path: Path
) -> None:
    refused = cli(running, *register_args("AT-BAD", "--selector", "group_id=x", "--platform", "x"))
    assert refused.exit_code == 1
    assert "Validation failed (422)" in refused.stderr
    usage = cli(running, *register_args("AT-BAD", "--selector", "no-equals-sign"))
    assert usage.exit_code == 2
    unknown = cli(running, "cases", "list", "--as", "authority-zz")
    assert unknown.exit_code == 2
    assert "unknown dev client" in unknown.stderr
    no_state = cli(running, "--state-dir", str(tmp_path), "cases", "list", "--as", "authority-at")
    assert no_state.exit_code == 2
    down = cli(
        running, "--intake-url", "http://127.0.0.1:9", "cases", "list", "--as", "authority-at"
    )
    assert down.exit_code == 3
    assert "cannot reach intake at http://127.0.0.1:9" in down.stderr
    help_text = cli(running, "--help")
    assert "Exit codes: 0 ok; 1 refused" in help_text.stdout


def test_responses_submit_with_idempotency(running: stack_mod.RunningStack, tmp_path: Path) -> None:
    group = f"grp_{tag()}"
    case = call(
        running, "authority-cz", "POST", f"{running.intake}/v1/cases",
        json={"reference": f"CZ-{tag()}", "platform": "telegram", "legal_basis": "x",
              "offence_categories": ["fraud"], "selectors": [{"kind": "group_id", "value": group}]},
    )  # fmt: skip
    body = tmp_path / "response.json"
    body.write_text(json.dumps(response_body(case["id"], group, ip="192.0.2.77")))
    args = ["responses", "submit", str(body), "--as", "platform-telegram"]
    first = cli(running, *args, "--idempotency-key", f"k-{tag()}", "--json")
    assert first.exit_code == 0, first.output
    accepted = json.loads(first.stdout)
    assert accepted["replayed"] is False
    key = ["--idempotency-key", f"k2-{tag()}"]
    shown = cli(running, *args, *key)
    assert shown.exit_code == 0, shown.output
    assert "accepted" in shown.stdout
    assert "192.0.2.77" not in shown.output  # disclosed data is never echoed
    replay = cli(running, *args, *key)
    assert "already accepted" in replay.stdout
    assert (
        cli(running, "responses", "submit", str(tmp_path / "nope.json"), "--as", "x").exit_code == 2
    )
    forbidden = cli(running, "responses", "submit", str(body), "--as", "authority-cz")
    assert forbidden.exit_code == 1
    assert "Forbidden (403)" in forbidden.stderr


def test_inbox_tail_decrypts_acknowledges_and_skips_seen_ids(
    running: stack_mod.RunningStack,
) -> None:
    d = deliver(running, "PT")
    call(
        running, "authority-lu", "POST", f"{running.intake}/v1/cases",
        json={"reference": f"LU-{tag()}", "platform": "telegram", "legal_basis": "x",
              "offence_categories": ["fraud"],
              "selectors": [{"kind": "group_id", "value": d.group}]},
    )  # fmt: skip
    tail = ["inbox", "tail", "--jurisdiction", "PT"]
    first = cli(running, *tail, "--ack", "--count", "2", "--timeout", "20")
    assert first.exit_code == 0, first.output
    assert "203.0.113.50" in first.stdout  # the recipient sees its own decrypted delivery
    assert "link found for PT" in first.stdout
    assert "2 record(s) shown" in first.stdout
    assert delivery_state(running, d)["acknowledged_at"] is not None

    other_group = cli(running, *tail, "--timeout", "1.5", "--group", f"g-{tag()}")
    assert other_group.exit_code == 0, other_group.output
    assert f"skipped {d.delivery_id}: already seen" in other_group.stdout
    assert "0 record(s) shown" in other_group.stdout

    wrong_key = running.state / "keys" / "FR.private.jwk.json"
    refused = cli(
        running, *tail, "--from-beginning", "--timeout", "20", "--key-file", str(wrong_key)
    )
    assert refused.exit_code == 2
    assert "cannot open delivery" in refused.stderr


def test_fanout_show_and_live_until_acknowledged(running: stack_mod.RunningStack) -> None:
    d = deliver(running, "SE")
    shown = cli(running, "fanout", "show", d.response_id)
    assert shown.exit_code == 0, shown.output
    assert re.search(r"SE\s.*named_case\s.*published", shown.stdout)
    assert "no_open_case" in shown.stdout
    data = json.loads(cli(running, "fanout", "show", d.response_id, "--json").stdout)
    assert [x["jurisdiction"] for x in data["deliveries"]] == ["SE"]

    live = subprocess.Popen(
        [sys.executable, "-m", "caseshare.cli", "fanout", "show", d.response_id, "--live",
         "--timeout", "30"],
        env=subprocess_env(running), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        call(running, "authority-se", "POST", f"{running.intake}/v1/inbox/{d.delivery_id}/ack")
        out, err = live.communicate(timeout=40)
    finally:
        live.kill()
    assert live.returncode == 0, err
    assert re.search(r"SE\s.*named_case\s.*acknowledged", out)
    assert "stopped watching" not in out


def test_demo_runs_the_story_and_leaves_it_in_the_registry(
    running: stack_mod.RunningStack,
) -> None:
    demo = subprocess.run(
        [sys.executable, "-m", "caseshare.cli", "demo"],
        env=subprocess_env(running), capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert demo.returncode == 0, demo.stdout + demo.stderr
    out = demo.stdout
    assert out.count("link found for") == 12  # DE, BE: 6 notices; then KR: 6 more
    assert out.count("sealed:") == 4  # every recipient's delivery refuses another's key
    assert "partner NO excluded (no_open_case)" in out
    match = re.search(r"demo response ([0-9a-f-]{36})", out)
    assert match, out
    fanout = call(
        running, "coordinator", "GET",
        f"{running.registry}/v1/registry/responses/{match.group(1)}/fanout",
    )  # fmt: skip
    states = {x["jurisdiction"]: x["state"] for x in fanout["deliveries"]}
    assert states == dict.fromkeys(("BE", "DE", "FR", "KR"), "acknowledged")
    assert "NO" in {x["jurisdiction"] for x in fanout["exclusions"]}
    again = cli(running, "demo")  # fresh references: the story can be told twice
    assert again.exit_code == 0, again.output


def test_example_consumer_acknowledges_then_commits(
    running: stack_mod.RunningStack, tmp_path: Path
) -> None:
    d = deliver(running, "IT")
    args = [
        sys.executable, str(ROOT / "examples" / "inbox_consumer.py"), "--jurisdiction", "IT",
        "--bootstrap", running.bootstrap, "--intake-url", running.intake,
        "--issuer", running.issuer, "--dev-clients", str(running.state / "dev-clients.json"),
        "--key-file", str(running.state / "keys" / "IT.private.jwk.json"),
        "--seen-db", str(tmp_path / "seen.sqlite"),
    ]  # fmt: skip
    first = subprocess.run(
        [*args, "--max-messages", "1", "--timeout", "30"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"acknowledged {d.delivery_id}" in first.stdout
    assert "203.0.113.50" not in first.stdout
    assert delivery_state(running, d)["acknowledged_at"] is not None
    replay = subprocess.run(
        [*args, "--group", f"replay-{tag()}", "--timeout", "1.5"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert f"duplicate {d.delivery_id}" in replay.stdout


def kcat_recipe() -> str:
    """The command under "Reading your inbox with kcat" in the README, verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Reading your inbox with kcat") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the kcat section has no sh block"
    return block.group(1)


@pytest.mark.skipif(shutil.which("kcat") is None, reason="run `python -m tests.system_deps`")
def test_kcat_recipe_from_the_readme(running: stack_mod.RunningStack) -> None:
    d = deliver(running, "ES")
    recipe = kcat_recipe()
    assert "127.0.0.1:9092" in recipe
    assert "caseshare.inbox.FR.v1" in recipe
    command = recipe.replace("127.0.0.1:9092", running.bootstrap).replace(
        "caseshare.inbox.FR.v1", "caseshare.inbox.ES.v1"
    )
    out = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert f"ce_id={d.delivery_id}" in out.stdout
    assert "ce_type=eu.caseshare.response.delivered.v1" in out.stdout
    assert f"key: {d.case['id']}" in out.stdout
