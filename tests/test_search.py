"""The search end to end, through the CLI: budgets respected, resumption after SIGKILL (once, and again and again),
exactly N finished trials with several workers, no configuration trained twice, trial folders fetched from the study,
accuracy, run folder; an MBConv search at its chosen resolutions, and the training device."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from nets import mbconv_blocks
from support import ROOT, run_cli
from tinycompile.search.artifacts import local_trial_folder
from tinycompile.trial import load_trial

DIGITS = ["--task", "digits", "--space", "cnn2d", "--target", "cortex-m4", "--epochs", "12"]
QUICK = ["--task", "digits", "--space", "cnn2d", "--target", "cortex-m4", "--epochs", "1"]  # ~1-3 s a candidate


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
    # `report` regenerates the same front from the study alone, even on a machine without the trial folders: another
    # machine of the study, where `best` dangled. It fetches the front's folders from the study's database.
    (run_dir / "pareto.json").unlink()
    shutil.rmtree(run_dir / "trials")
    again = run_cli("report", str(run_dir))
    assert again.returncode == 0, again.stderr
    assert json.loads((run_dir / "pareto.json").read_text())["front"] == front
    spec, _, metrics = load_trial(run_dir / "best")
    assert spec.meta["trial"] == front[0]["trial"] and metrics["val_acc"] == front[0]["val_acc"]
    for t in under:  # what `build` does with a trial folder that is not on this machine
        assert load_trial(local_trial_folder(run_dir / "trials" / str(t.number)))[2]["val_acc"] == t.values[0]
    assert not list(run_dir.rglob("*.tmp"))


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
    for number in after:  # a trial killed after saving counts, under a new number: its folder comes from the study
        assert json.loads((local_trial_folder(run_dir / "trials" / str(number)) / "metrics.json").read_text())
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
    # the stronger of the two candidates by validation accuracy teaches, trained twice a trial's 12 epochs
    assert [c["name"] for c in teacher["candidates"]][1].startswith("ds-cnn-")
    assert teacher["val_acc"] == max(c["val_acc"] for c in teacher["candidates"])
    assert teacher["epochs"] <= 24 and "trained 24 epochs" in teacher["source"]
    trials = complete(load(run_dir))
    assert len(trials) == 3  # two workers, and still exactly the trials asked for
    assert len({t.user_attrs["worker"] for t in trials}) == 2
    for t in trials:
        if t.user_attrs["trained"]:
            assert json.loads((run_dir / "trials" / str(t.number) / "metrics.json").read_text())["distilled"] is True


def by_state(study: optuna.Study) -> dict[TrialState, list[optuna.trial.FrozenTrial]]:
    groups: dict[TrialState, list[optuna.trial.FrozenTrial]] = {state: [] for state in TrialState}
    for t in study.get_trials():
        groups[t.state].append(t)
    return groups


def config_of(t: optuna.trial.FrozenTrial) -> tuple:
    return tuple(sorted(t.params.items()))


def search_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "tinycompile.cli", "search", *args]


def test_concurrent_and_resumed_runs_never_train_a_candidate_twice(tmp_path: Path) -> None:
    args = [*QUICK, "--study", "dup", "--out", str(tmp_path)]
    first = run_cli("search", *args, "--trials", "3")
    assert first.returncode == 0, first.stderr
    run_dir = tmp_path / "dup"
    study = load(run_dir)
    finished = complete(study)[0]
    study.enqueue_trial(finished.params)  # a configuration the study already finished, queued again
    # Two runs of the same command at once (two machines, or two terminals), both resuming the study: before, both
    # workers had the sampler seed of worker 0 and proposed the same candidates, and the resumed sampler re-proposed
    # the first run's candidates.
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [subprocess.Popen(search_cmd(*args, "--trials", "8"), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
    groups = by_state(load(run_dir))
    done = groups[TrialState.COMPLETE]
    assert len(done) == 8
    assert len({config_of(t) for t in done}) == 8, "a configuration was trained twice"
    seeds = {t.user_attrs["worker"]: t.user_attrs["sampler_seed"] for t in done}
    assert len(set(seeds.values())) == len(seeds) >= 2, f"processes shared a sampler seed: {seeds}"
    # the queued copy of trial `finished` was skipped, not trained: its result stays the first one's
    skipped = [t for t in groups[TrialState.PRUNED] if t.user_attrs.get("duplicate_of") is not None]
    assert any(config_of(t) == config_of(finished) for t in skipped)
    for t in skipped:
        twin = next(u for u in done if u.number == t.user_attrs["duplicate_of"])
        assert config_of(twin) == config_of(t)
        assert not (run_dir / "trials" / str(t.number)).exists()
    assert not groups[TrialState.RUNNING] and not groups[TrialState.WAITING]


KILL_AFTER_SAVING = """
import os, signal, sys
from tinycompile.fileio import write_json
from tinycompile.search.config import SearchConfig, prepare
from tinycompile.search.objective import Objective
from tinycompile.search.storage import open_study

config = SearchConfig(task="digits", space="cnn2d", target="cortex-m4", epochs=1, trials=1, study="saved", out=sys.argv[1])
write_json(config.run_dir / "config.json", config.to_dict())
study = open_study(config)
objective = Objective(prepare(config))

def killed_after_saving(trial):
    objective(trial)  # trains, saves the folder and records the result
    os.kill(os.getpid(), signal.SIGKILL)  # dies before Optuna marks the trial finished

study.optimize(killed_after_saving, n_trials=1)
"""


def test_a_trial_killed_after_saving_counts_as_finished(tmp_path: Path) -> None:
    killed = subprocess.run([sys.executable, "-c", KILL_AFTER_SAVING, str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = tmp_path / "saved"
    (dead,) = load(run_dir).get_trials()
    assert dead.state == TrialState.RUNNING and (run_dir / "trials" / "0" / "metrics.json").is_file()
    result = run_cli("search", *QUICK, "--trials", "1", "--study", "saved", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    groups = by_state(load(run_dir))
    (done,) = groups[TrialState.COMPLETE]
    assert not groups[TrialState.RUNNING] and not groups[TrialState.WAITING]
    # its saved result counts: the same configuration and values, not trained again
    assert config_of(done) == config_of(dead) and done.user_attrs["worker"] == dead.user_attrs["worker"]
    metrics = json.loads((run_dir / "trials" / "0" / "metrics.json").read_text())
    assert list(done.values)[0] == metrics["val_acc"]


def test_a_search_killed_again_and_again_ends_with_exactly_n_trials(tmp_path: Path) -> None:
    # The bar: five SIGKILLs at random moments of a two-worker search (mid-training, mid-upload, between trials), then
    # one run to the end. The mlp space trains in well under a second, so the kills land in every phase of a trial.
    n = 8
    args = ["--task", "digits", "--space", "mlp", "--target", "cortex-m4", "--epochs", "2", "--trials", str(n),
            "--jobs", "2", "--study", "loop", "--out", str(tmp_path)]
    run_dir = tmp_path / "loop"
    rng = random.Random(14)
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    for _ in range(5):
        started = len(load(run_dir).get_trials()) if (run_dir / "config.json").exists() else 0
        proc = subprocess.Popen(search_cmd(*args), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:  # wait for the workers to start a trial
            time.sleep(0.2)
            if (run_dir / "config.json").exists() and len(load(run_dir).get_trials()) > started:
                break
        time.sleep(rng.uniform(0, 3))
        proc.kill()
        proc.wait()
    result = run_cli("search", *args)
    assert result.returncode == 0, result.stderr
    groups = by_state(load(run_dir))
    done = groups[TrialState.COMPLETE]
    assert len(done) == n
    assert not groups[TrialState.RUNNING] and not groups[TrialState.WAITING]
    assert len({config_of(t) for t in done}) == n, "a configuration was trained twice"
    for t in done:
        if t.user_attrs["trained"]:
            assert load_trial(local_trial_folder(run_dir / "trials" / str(t.number)))[2]["val_acc"] == t.values[0]


def test_an_mbconv_search_trains_inverted_residual_networks_at_their_resolution(tmp_path: Path) -> None:
    result = run_cli("search", "--task", "digits", "--space", "mbconv2d", "--target", "cortex-m4", "--trials", "3",
                     "--epochs", "1", "--device", "cpu", "--study", "mb", "--out", str(tmp_path))
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "mb"
    assert json.loads((run_dir / "config.json").read_text())["device"] == "cpu"
    trials = complete(load(run_dir))
    assert len(trials) == 3 and all(t.user_attrs["trained"] for t in trials)  # all fit cortex-m4's memories
    for t in trials:
        spec, _, metrics = load_trial(run_dir / "trials" / str(t.number))  # the weights load on this CPU machine
        side = t.params["net.resolution"]
        assert spec.input_shape == (1, side, side) and spec.meta["resolution"] == side and spec.meta["task"] == "digits"
        blocks = mbconv_blocks(spec)  # asserts expand -> depthwise -> linear projection (-> add) in every block
        assert len(blocks) == sum(t.params[f"stage{s}.depth"] for s in range(3))
        assert blocks[0]["kernel"] == t.params["stage0.block0.kernel"]
        assert metrics["device"] == "cpu" and metrics["val_acc"] == t.values[0]
        assert t.user_attrs["macs"] == sum(spec.macs())  # the cost model saw the resized input


def test_cuda_on_a_machine_without_it_is_refused(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: --device cuda is allowed here")
    result = run_cli("search", *QUICK, "--trials", "1", "--device", "cuda", "--out", str(tmp_path / "runs"))
    assert result.returncode == 2
    err = result.stderr.strip()
    assert "\n" not in err and "--device cuda: CUDA is not available on this machine" in err, err
    assert not (tmp_path / "runs").exists()
