"""Trace reading and replay planning: windows, compression, the max_tokens cap, sampling, regions, prompts."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmfleet import trace


def write(folder: Path, name: str, rows: list[str]) -> Path:
    path = folder / f"{name}.csv"
    path.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n" + "\n".join(rows) + "\n")
    return path


def test_files_share_one_clock_and_rows_come_in_time_order(tmp_path):
    a = write(tmp_path, "a", ["2023-11-16 18:00:01.5000000,100,10", "2023-11-16 18:00:03.0000000,200,20"])
    b = write(tmp_path, "b", ["2023-11-16 18:00:00.2500000,50,5"])
    rows = trace.read({"model-a": a, "model-b": b})
    assert [(r.model_id, r.offset_s) for r in rows] == [("model-b", 0.0), ("model-a", 1.25), ("model-a", 2.75)]
    assert trace.span_s(rows) == 2.75


def test_a_bad_row_names_its_file_and_line(tmp_path):
    bad = write(tmp_path, "bad", ["2023-11-16 18:00:01.0,100,10", "not a time,1,2"])
    with pytest.raises(ValueError, match=r"bad.csv:3"):
        trace.read({"m": bad})


def test_the_window_is_cut_compressed_and_capped():
    rows = [trace.TraceRow("m", t, 300, out) for t, out in [(5.0, 10), (10.0, 500), (20.0, 0), (40.0, 7)]]
    planned = trace.plan(
        rows, window_start_s=10.0, window_s=30.0, compression=10.0, max_tokens_cap=16, regions={"r": 1}
    )
    assert [(p.trace_offset_s, p.send_at_s, p.max_tokens, p.trace_output_tokens) for p in planned] == [
        (0.0, 0.0, 16, 500),  # capped
        (10.0, 1.0, 1, 0),  # at least one token is asked for
    ]


def test_sampling_thins_evenly_and_repeats():
    rows = [trace.TraceRow("m", float(i), 10, 10) for i in range(4000)]
    first = trace.plan(rows, 0, 4000, 1, 16, {"r": 1}, sample=0.25)
    again = trace.plan(rows, 0, 4000, 1, 16, {"r": 1}, sample=0.25)
    assert first == again
    assert 900 < len(first) < 1100
    early = sum(1 for p in first if p.trace_offset_s < 2000)
    assert 0.4 < early / len(first) < 0.6  # spread over the window, not bunched


def test_regions_follow_their_shares():
    rows = [trace.TraceRow("m", float(i), 10, 10) for i in range(5000)]
    planned = trace.plan(rows, 0, 5000, 1, 16, {"us-east-1": 0.7, "eu-west-1": 0.3})
    share = sum(1 for p in planned if p.region == "eu-west-1") / len(planned)
    assert 0.27 < share < 0.33


@pytest.mark.parametrize(
    ("compression", "window", "cap", "sample"), [(0, 1, 1, 1), (1, 0, 1, 1), (1, 1, 0, 1), (1, 1, 1, 0)]
)
def test_nonsense_settings_are_refused(compression, window, cap, sample):
    with pytest.raises(ValueError):
        trace.plan([], 0, window, compression, cap, {"r": 1}, sample=sample)


def test_an_unknown_trace_says_what_is_known():
    with pytest.raises(ValueError, match="azure-llm-2023"):
        trace.resolve("no-such-trace")


def test_the_builtin_azure_trace_has_both_models_on_one_clock():
    rows = trace.read(trace.resolve("azure-llm-2023"))
    assert {r.model_id for r in rows} == {"azure-code", "azure-conversation"}
    assert len(rows) == 8819 + 19366
    assert 3500 < trace.span_s(rows) < 3700  # about an hour


@given(st.integers(min_value=0, max_value=20_000), st.integers(min_value=0, max_value=10_000))
def test_a_synthesised_prompt_has_exactly_the_trace_token_count_in_bytes(tokens, index):
    prompt = trace.synthesise_prompt(tokens, index)
    assert len(prompt.encode()) == tokens


def test_a_users_trace_outside_the_repository_or_relative_is_planned(tmp_path, monkeypatch):
    """A user's trace is usually elsewhere: an absolute path outside the repo, or a relative one."""
    from llmfleet.demo import DemoOptions, plan_requests

    rows = [f"2023-11-16 18:00:{s:02d}.0000000,100,10" for s in range(0, 40, 2)]
    write(tmp_path, "mine", rows)
    monkeypatch.chdir(tmp_path)
    for given_as in (str(tmp_path / "mine.csv"), "mine.csv", "."):
        planned, config = plan_requests(DemoOptions(trace=given_as, compression=1.0, duration_s=30.0, sample=1.0))
        assert len(planned) == 15
        assert config.models == {"mine": str(tmp_path / "mine.csv")}
