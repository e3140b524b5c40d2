"""The search end to end, through the CLI: budgets respected, resumption after SIGKILL, accuracy, run folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from support import ROOT, run_cli

DIGITS = ["--task", "digits", "--space", "cnn2d", "--target", "cortex-m4", "--epochs", "12"]


def load(run_dir: Path) -> optuna.Study:
    config = json.loads((run_dir / "config.json").read_text())
    url = config["storage"] or f"sqlite:///{run_dir / 'study.db'}"
    return optuna.load_study(study_name=run_dir.name, storage=url)


def complete(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.COMPLETE,))


def test_over_budget_candidates_are_never_trained(tmp_path: Path) -> None:
    # Half the cnn2d candidates need more than 3.1 KB of peak SRAM on cortex-m4 (arena + 2 KB runtime).
    result = run_cli("search", *DIGITS, "--trials", "10", "--sram-kb", "3.1", "--study", "tight", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "tight"
    trials = complete(load(run_dir))
    over = [t for t in trials if t.user_attrs["peak_sram"] > 3.1 * 1024]
    under = [t for t in trials if t.user_attrs["peak_sram"] <= 3.1 * 1024]
    assert over and under, "the budget should split the candidates for this test to mean anything"
    for t in over:
        assert t.user_attrs["trained"] is False and t.values[0] == 0.0
        assert not (run_dir / "trials" / str(t.number) / "weights.pt").exists()
    for t in under:
        assert t.user_attrs["trained"] is True
        assert (run_dir / "trials" / str(t.number) / "weights.pt").is_file()
    front = json.loads((run_dir / "pareto.json").read_text())["front"]
    assert front and all(row["peak_sram"] <= 3.1 * 1024 for row in front)
    assert max(row["test_acc"] for row in front) >= 0.90  # even 12 epochs on the budget reach 90% on digits
    for name in ("pareto_front.png", "pareto_front.html", "history.png", "history.html", "plotly.min.js"):
        assert (run_dir / name).stat().st_size > 1000
    assert (run_dir / "best" / "weights.pt").is_file()
    # `report` regenerates the same front from the study alone
    (run_dir / "pareto.json").unlink()
    again = run_cli("report", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "pareto.json").read_text())["front"] == front


def test_a_search_killed_with_sigkill_resumes_without_losing_trials(tmp_path: Path) -> None:
    args = ["search", *DIGITS, "--trials", "7", "--study", "killed", "--out", str(tmp_path)]
    cmd = [sys.executable, "-m", "tinycompile.cli", *args]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run_dir = tmp_path / "killed"
    deadline = time.time() + 600
    before: dict[int, tuple[float, ...]] = {}
    while time.time() < deadline and len(before) < 3:
        time.sleep(1)
        if (run_dir / "config.json").exists():
            before = {t.number: tuple(t.values) for t in complete(load(run_dir))}
    assert len(before) >= 3, "the search did not finish three trials in time"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr
    assert "resuming study killed" in result.stdout + result.stderr
    after = {t.number: tuple(t.values) for t in complete(load(run_dir))}
    assert len(after) >= 7
    for number, values in before.items():
        assert after[number] == values  # every finished trial kept, unchanged
    for number in after:
        assert json.loads((run_dir / "trials" / str(number) / "metrics.json").read_text())
    assert not list(run_dir.rglob("*.tmp")), "an interrupted write left a temporary file behind"


def test_resuming_with_other_settings_is_refused(tmp_path: Path) -> None:
    first = run_cli("search", *DIGITS, "--trials", "1", "--study", "s", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    other = run_cli("search", *DIGITS, "--trials", "1", "--study", "s", "--out", str(tmp_path), "--sram-kb", "100")
    assert other.returncode == 2
    assert "was started with sram_kb=None, not 100.0" in other.stderr


def test_distilled_search_trains_one_teacher_for_all_workers(tmp_path: Path) -> None:
    result = run_cli("search", *DIGITS, "--trials", "3", "--jobs", "2", "--distill", "--study", "kd", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "kd"
    teacher = json.loads((run_dir / "teacher" / "metrics.json").read_text())
    assert teacher["test_acc"] >= 0.9
    trials = complete(load(run_dir))
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    for t in trials:
        if t.user_attrs["trained"]:
            assert json.loads((run_dir / "trials" / str(t.number) / "metrics.json").read_text())["distilled"] is True
