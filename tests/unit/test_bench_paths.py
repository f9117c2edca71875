"""The paths phase reports ratios per round, refuses failed or starved runs, and writes the
request lists its wrk script reads."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from bench import bare, paths, report
from bench.intake import WrkResult


def wrk(rps: float, *, requests: int = 800, failures: int = 0) -> WrkResult:
    return WrkResult(rps=rps, p50_ms=10.0, p99_ms=40.0, requests=requests, failures=failures)


def rounds() -> dict[str, list[WrkResult]]:
    return {
        "issue": [wrk(100), wrk(120), wrk(90)],
        "release": [wrk(50), wrk(40), wrk(60)],
        "inbox": [wrk(300), wrk(300), wrk(300)],
        "commit": [wrk(1000), wrk(1000), wrk(600)],
        "bare_inbox": [wrk(3000), wrk(1500), wrk(3000)],
    }


def test_each_path_is_a_ratio_per_round_against_its_own_baseline() -> None:
    rows = {f["name"]: f for f in paths.figures(rounds())}
    issue = rows["issuing a request vs commit ceiling"]["ratio"]
    assert issue["runs"] == [0.1, 0.12, 0.15]  # per round, not a ratio of medians (0.1)
    assert issue["median"] == 0.12
    release = rows["releasing a held delivery vs commit ceiling"]["ratio"]
    assert release["runs"] == [0.05, 0.04, 0.1]
    inbox = rows["platform inbox page vs bare endpoint, same bytes"]["ratio"]
    assert inbox["runs"] == [0.1, 0.2, 0.1]
    assert rows["platform inbox page vs commit ceiling"]["ratio"]["runs"] == [0.3, 0.3, 0.5]


def test_no_path_gets_a_verdict_the_issue_did_not_set() -> None:
    figures = paths.figures(rounds())
    assert len(figures) == 4
    assert {f["goal"] for f in figures} == {"context"}
    assert {f["met"] for f in figures} == {None}
    table = report.table({"figures": figures, "memory": {"peak_mib": {}}}).splitlines()
    assert table[2] == (
        "| issuing a request vs commit ceiling | 100 requests/s (p50 10.0 / p99 40.0 ms)"
        " | 1000 req/s (p50 10.0 / p99 40.0 ms) | 0.120 (±21%) | context | - |"
    )


def test_a_run_with_any_failed_request_fails_the_phase() -> None:
    paths.check("issue", wrk(100))
    with pytest.raises(RuntimeError, match="1 of 800 requests failed"):
        paths.check("issue", wrk(100, failures=1))
    with pytest.raises(RuntimeError, match="no request completed"):
        paths.check("inbox", wrk(0, requests=0))


def test_a_release_list_used_up_before_the_end_fails_the_round() -> None:
    # wrk takes one request to check the script and never sends it: 800 sent of 801 is all
    paths.check("release", wrk(100, requests=799), listed=801)
    with pytest.raises(RuntimeError, match="all 801 listed requests were used"):
        paths.check("release", wrk(100, requests=800), listed=801)


def test_the_release_pool_covers_four_times_the_fastest_rate_seen() -> None:
    assert paths.pool_needed([50.0, 120.0, 80.0], 8) == 4 * 120 * 8 + paths.POOL_SLACK
    assert paths.pool_needed([], 8) == paths.POOL_SLACK


def test_request_lines_are_one_per_line_tab_separated(tmp_path: Path) -> None:
    written = paths.write_lines(
        [("GET", "/v1/platform/requests?limit=50", 1, ""), ("POST", "/v1/x", 2, '{"a":1}')],
        tmp_path / "lines.tsv",
    )
    assert written.read_text() == (
        'GET\t/v1/platform/requests?limit=50\t1\t\nPOST\t/v1/x\t2\t{"a":1}\n'
    )


async def test_the_bare_inbox_sends_the_very_bytes_of_the_page_it_was_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = b'{"items":[{"id":"x","selectors":[]}],"next_cursor":null}'
    (tmp_path / "page.json").write_bytes(page)
    monkeypatch.setenv("BENCH_BARE_PAGE", str(tmp_path / "page.json"))
    transport = httpx.ASGITransport(app=bare.create_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://bare") as client:
        answer = await client.get("/v1/platform/requests?limit=50", headers={"Authorization": "x"})
    assert answer.status_code == 200
    assert answer.content == page
    assert answer.headers["content-type"] == "application/json"
