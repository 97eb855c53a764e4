"""The report of a study: report.md, summary.csv, valid PNGs, and the terminal table."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
import torch

from lrpilot.cli import main
from lrpilot.experiments.report import build_report
from lrpilot.experiments.run import read_metrics
from lrpilot.experiments.jobs import Job, execute_run
from lrpilot.experiments.store import StudyStore
from lrpilot.experiments.study import Study

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STUDY = Study(tasks=("digits-mlp",), controllers=("constant", "rule", "bold"), seeds=2, lrs=(1e-4, 3e-3), epochs=3)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    """A finished study of 12 tiny runs, trained in this process (the runner has its own tests)."""
    root = tmp_path_factory.mktemp("study")
    threads = torch.get_num_threads()
    try:
        with StudyStore.open(root, STUDY) as store:
            for config in STUDY.run_configs():
                outcome = execute_run(Job(config.name, config.to_dict(), str(store.run_dir(config.name)), ()), threads=1)
                assert outcome["ok"], outcome
                store.mark_done(config.name)
    finally:
        torch.set_num_threads(threads)
    return root


def test_report_files_and_valid_pngs(study_dir):
    analysis = build_report(study_dir)
    report = (study_dir / "report.md").read_text()
    assert "12 runs planned: 12 finished" in report
    assert "## digits-mlp, adam, lr 0.0001" in report and "## digits-mlp, adam, lr 0.003" in report
    assert "Wilcoxon" in report and "n=2" in report
    pngs = sorted((study_dir / "plots").glob("*.png"))
    assert len(pngs) == 2 * 2 + 1  # curves and LR traces per setting, final accuracy per task
    for png in pngs:
        data = png.read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000, png
        assert f"(plots/{png.name})" in report
    assert len(analysis.summary) == 6


def test_the_report_says_which_thread_counts_the_runs_used(study_dir, tmp_path):
    """One count is stated; runs with different counts (numbers not bit-comparable) are flagged."""
    build_report(study_dir, plots=False)
    assert "Torch threads per run: 1." in (study_dir / "report.md").read_text()
    mixed = tmp_path / "mixed"
    shutil.copytree(study_dir, mixed)
    path = mixed / "runs" / "digits-mlp__bold__lr0.0001__s0" / "metrics.jsonl"
    path.write_text(path.read_text().replace('"torch_threads": 1', '"torch_threads": 2'))
    build_report(mixed, plots=False)
    assert "different torch thread counts: 1 (11 runs), 2 (1 run)" in (mixed / "report.md").read_text()


def test_summary_csv_matches_the_runs(study_dir):
    build_report(study_dir, plots=False)
    with open(study_dir / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 6
    row = next(r for r in rows if r["controller"] == "bold" and r["lr"] == "0.0001")
    accs = [read_metrics(study_dir / "runs" / f"digits-mlp__bold__lr0.0001__s{s}" / "metrics.jsonl")[1]["test_acc"]
            for s in (0, 1)]
    assert float(row["test_acc_mean"]) == pytest.approx(sum(accs) / 2, abs=1e-5)
    assert row["test_acc_n"] == "2" and row["runs"] == "2" and row["vs_reference"] == "rule"
    assert float(row["test_acc_ci_low"]) <= float(row["test_acc_mean"]) <= float(row["test_acc_ci_high"])
    ranks = [float(r["rank_mean"]) for r in rows if r["lr"] == "0.0001"]
    assert sum(ranks) == pytest.approx(6.0)  # ranks 1..3 within each seed average to a total of 6
    assert min(float(r["regret_mean"]) for r in rows) >= 0


def test_report_command_and_an_unfinished_study(study_dir, tmp_path, capsys):
    partial = tmp_path / "partial"
    shutil.copytree(study_dir, partial)
    shutil.rmtree(partial / "runs" / "digits-mlp__rule__lr0.003__s1")
    assert main(["report", str(partial), "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert "digits-mlp, adam, lr 0.003" in out and "bold" in out and "report written" in out
    report = (partial / "report.md").read_text()
    assert "11 finished (0 diverged), 0 failed, 1 not finished" in report
    assert "| rule | 1 |" in report  # the setting with a missing seed says so


def test_terminal_tables_fit_80_columns_when_printed_to_a_pipe(study_dir, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)  # not a terminal and no COLUMNS: rich prints 80 columns
    assert main(["report", str(study_dir), "--no-plots"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= 80 for line in lines), "\n".join(lines)
    for name in ("constant", "rule", "bold"):  # a row per setting, headed by the whole name, the CI beside the mean
        rows = [line for line in lines if line.startswith(name + " ")]
        assert len(rows) == 2 and all("±" in row for row in rows), rows


def test_report_of_a_directory_without_a_study(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    assert "holds no study.json" in capsys.readouterr().err
