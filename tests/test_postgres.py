"""Two search processes fill one study on a real PostgreSQL server, as workers on two machines would.

The server is the one `tinycompile db start` makes (the README's steps for a study on several machines).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from support import ROOT, run_cli
from tinycompile.search.artifacts import local_trial_folder
from tinycompile.trial import load_trial


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server started by `tinycompile db start`, stopped by `tinycompile db stop`."""
    # PostgreSQL runs as `postgres` when we are root: its folder must be reachable by that user (not under a 0700 tmp)
    base = Path(tempfile.mkdtemp(prefix="tinycompile-pg-"))
    base.chmod(0o755)
    data, port = base / "db", str(_free_port())
    try:
        started = run_cli("db", "start", "--data", str(data), "--port", port)
        assert started.returncode == 0, started.stderr
        url = started.stdout.strip().splitlines()[-1]
        assert url.startswith("postgresql") and f":{port}/" in url, started.stdout
        again = run_cli("db", "start", "--data", str(data), "--port", port)  # idempotent: same server, same URL
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().splitlines()[-1] == url and "already running" in again.stdout
        yield url
    finally:
        stopped = run_cli("db", "stop", "--data", str(data))
        subprocess.run(["rm", "-rf", str(base)], check=False)
        assert stopped.returncode == 0, stopped.stderr


def test_db_start_refuses_a_port_in_use(postgres_url: str, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)
    port = postgres_url.rsplit(":", 1)[1].split("/")[0]
    other = run_cli("db", "start", "--data", str(tmp_path / "db"), "--port", port)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1, other.stderr
    assert f"port {port}" in other.stderr


def test_two_processes_share_one_study_and_can_build_each_others_trials(postgres_url: str, tmp_path: Path) -> None:
    n = 6
    args = ["search", "--task", "digits", "--space", "cnn2d", "--target", "cortex-m4", "--epochs", "2",
            "--trials", str(n), "--storage", postgres_url, "--study", "shared"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    machines = [tmp_path / f"machine{i}" for i in range(2)]
    procs = [
        subprocess.Popen([sys.executable, "-m", "tinycompile.cli", *args, "--out", str(out)],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for out in machines
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == n  # shared: one count for both processes, not n each
    assert len({tuple(sorted(t.params.items())) for t in trials}) == n, "a configuration was trained twice"
    assert not study.get_trials(states=(TrialState.RUNNING, TrialState.WAITING))
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, f"both processes should have run trials, got {workers}"

    # Machine1 forgets every trial folder (each search fetched the Pareto trials it lacked): all must come from the
    # study now. A full build of its `best`, a dangling link there:
    shutil.rmtree(machines[1] / "shared" / "trials")
    build = run_cli("build", str(machines[1] / "shared" / "best"), "--target", "cortex-m4", "-o", str(tmp_path / "m4"),
                    "--vectors", "16")
    assert build.returncode == 0, build.stderr
    assert "bit-exact" in build.stdout
    for t in (t for t in trials if t.user_attrs["trained"]):  # every trained trial loads in either run folder
        for machine in machines:
            folder = local_trial_folder(machine / "shared" / "trials" / str(t.number))
            assert load_trial(folder)[2]["val_acc"] == t.values[0]
