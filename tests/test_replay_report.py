"""The replay report: one offline HTML file with the plots, summary.json and Markdown (issue #10, point 4)."""

from __future__ import annotations

import json
import random
import shutil

import pytest
from typer.testing import CliRunner

from tests.replay_frames import build, write_results_dir
from tests.screenshots import ARTIFACTS, png_pixels, screenshot
from tracedrop.pipelines.cli import app
from tracedrop.replay.compare.summary import summarize
from tracedrop.replay.report import write_report
from tracedrop.replay.report.gate import parse_gate, violations

WORDS = [
    "the",
    "model",
    "reads",
    "the",
    "file",
    "then",
    "edits",
    "the",
    "function",
    "and",
    "runs",
    "the",
    "tests",
    "again",
    "until",
    "they",
    "pass",
]


def replay_frames(rows: int = 60, seed: int = 3):
    """Two candidates against the original: ``close`` mostly agrees, ``terse`` answers shorter with other tools."""
    rng = random.Random(seed)
    row_specs, calls = [], []
    for i in range(rows):
        row_id = f"r{i:03d}"
        row_specs.append(
            {
                "row_id": row_id,
                "session_id": f"s{i // 3}",
                "variant_label": ("control", "treatment")[i % 2],
                "request_kind": ("chat", "tool")[i % 3 == 0],
                "feedback_rating": (None, "up", "down")[i % 3],
                "response_format_json": i % 10 == 0,
            }
        )
        text = " ".join(rng.choice(WORDS) for _ in range(30))
        tools = [{"name": "edit_file", "arguments": {"path": f"src/{i}.py", "line": i}}] if i % 3 == 0 else None
        shorter = " ".join(text.split()[:12])
        calls += [
            {"row_id": row_id, "arm": "original", "output_text": text, "tool_calls": tools, "latency_ms": 900.0},
            {
                "row_id": row_id,
                "arm": "close",
                "output_text": text if i % 4 else text.replace("tests", "unit tests"),
                "tool_calls": tools,
                "latency_ms": rng.gauss(800, 80),
                "ttft_ms": rng.gauss(200, 30),
            },
            {
                "row_id": row_id,
                "arm": "terse",
                "output_text": shorter,
                "tool_calls": [{"name": "edit_file", "arguments": {"path": "other.py"}}] if tools else None,
                "latency_ms": rng.gauss(500, 60),
                "ttft_ms": rng.gauss(120, 20),
                "finish_reason": "length" if i % 5 == 0 else "stop",
            },
        ]
    # A second sample of a few rows: the same answer but one word, so that the arm's consistency shows.
    calls += [
        {**call, "sample": 1, "output_text": call["output_text"].replace("the", "a", 1)}
        for call in calls
        if call["arm"] == "close" and call["row_id"].endswith("0")
    ]
    return build(row_specs, calls, errors=[{"row_id": "r001", "arm": "terse", "sample": 1}])


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    summary = summarize(replay_frames())
    return summary, write_report(summary, out)


def test_the_html_is_one_self_contained_file_that_needs_nothing_from_the_network(report):
    _, files = report
    html = files.html.read_text()
    for external in ("<script", "<link", "@import", "url(", "src=", "https://"):
        assert external not in html
    assert html.count("http://") == html.count('xmlns="http://www.w3.org/2000/svg"')  # SVG namespace only
    sections = (
        "Coverage",
        "Forest plot",
        "Repeated samples",
        "Latency CDF",
        "Similarity to the baseline",
        "Wins, ties",
    )
    for section in (*sections, "Worst regressions"):
        assert section in html
    assert html.count("<svg") >= 8  # one forest per metric, two CDFs, two histograms, the bars
    assert "<del>" in html and "<ins>" in html  # the worst regressions are diffed side by side


def test_summary_json_holds_every_figure_the_html_and_markdown_show(report):
    summary, files = report
    saved = json.loads(files.summary.read_text())
    assert saved["comparisons"] == json.loads(json.dumps(summary["comparisons"]))
    latency = next(c for c in saved["comparisons"] if c["candidate"] == "terse" and c["metric"] == "latency_ms")
    assert latency["diff"] < 0 and latency["significant"] and latency["ci_high"] < 0
    assert saved["coverage"]["terse"]["errors"] == 1
    markdown = files.markdown.read_text()
    html = files.html.read_text()
    shown = f"{latency['diff']:.3g}"
    assert shown in markdown and shown in html


def test_fail_on_gates_flag_each_candidate_that_crosses_a_threshold(report):
    summary, _ = report
    assert violations(summary, [parse_gate("similarity<0.5")]) == [
        f"terse: similarity = {summary['levels']['terse']['similarity']:.4g} violates similarity<0.5"
    ]
    assert violations(summary, [parse_gate("error_rate>0.05")]) == []
    assert violations(summary, [parse_gate("json_valid_rate < 2")])  # a rate below 2 always fails: both listed
    with pytest.raises(ValueError, match="unknown metric 'similar'"):
        parse_gate("similar<0.8")
    with pytest.raises(ValueError, match="expected METRIC<THRESHOLD"):
        parse_gate("similarity=0.8")


def test_headless_chromium_renders_the_plots(report):
    _, files = report
    shot = screenshot(files.html.as_uri(), "replay_report.png", (1280, 2400))
    shutil.copy(files.html, ARTIFACTS / "replay_report.html")
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1280, 2400)
    assert shot.stat().st_size > 50_000 and pixels.std() > 20  # drawn plots and text, not a blank page
    colours = {tuple(p) for p in pixels[:, : width * 3].reshape(-1, 3)[::7]}
    assert len(colours) > 20  # the palette of the plots, not just black on white


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory):
    return write_results_dir(replay_frames(), tmp_path_factory.mktemp("run") / "results")


def report_cli(*args: str):
    return CliRunner().invoke(app, ["replay", "report", *args])


def test_the_command_writes_the_report_from_a_results_directory_and_gates_on_fail_on(results_dir, tmp_path):
    out = tmp_path / "site" / "report.html"
    passed = report_cli("--results", str(results_dir), "--out", str(out), "--fail-on", "error_rate>0.05")
    assert passed.exit_code == 0, passed.output
    assert f"report: {out}" in passed.output and (out.parent / "summary.json").is_file()
    assert (out.parent / "summary.md").read_text().startswith("# Replay report: close, terse against `original`")
    failed = report_cli("--results", str(results_dir), "--out", str(out), "--fail-on", "similarity<0.8")
    assert failed.exit_code == 1
    assert "FAIL terse: similarity" in failed.stderr and "close" not in failed.stderr
    against_close = report_cli("--results", str(results_dir), "--out", str(out), "--baseline", "close")
    assert against_close.exit_code == 0
    assert json.loads((out.parent / "summary.json").read_text())["candidates"] == ["original", "terse"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--fail-on", "similarity=0.8"], "--fail-on 'similarity=0.8': expected METRIC<THRESHOLD"),
        (["--baseline", "gpt-9"], "--baseline gpt-9: not an arm of this run; use one of close, original, terse"),
        (["--judge", "http://127.0.0.1:1/v1"], "--judge needs --judge-model"),
        (["--judge", "ftp://judge", "--judge-model", "j"], "--judge 'ftp://judge': not an http(s) base URL"),
    ],
)
def test_bad_input_gets_one_line_exit_2_and_nothing_written(results_dir, tmp_path, args, message):
    out = tmp_path / "report.html"
    result = report_cli("--results", str(results_dir), "--out", str(out), *args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tracedrop replay report: ")
    assert message in result.stderr and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_a_directory_that_is_not_a_replay_run_is_named(tmp_path):
    result = report_cli("--results", str(tmp_path), "--out", str(tmp_path / "r.html"))
    assert result.exit_code == 2
    assert f"--results {tmp_path}: not a replay results directory (no run.json)" in result.stderr
