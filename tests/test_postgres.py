"""Two search processes fill one study on a real PostgreSQL server, as workers on two machines would."""

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

from support import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    """A throw-away PostgreSQL server on loopback (PostgreSQL refuses to run as root: it runs as `postgres`)."""
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"))
    assert bindirs, "PostgreSQL is not installed: run scripts/setup.sh"
    bindir = bindirs[-1]
    base = Path(tempfile.mkdtemp(prefix="tinycompile-pg-"))
    data = base / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(base, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    run = lambda *cmd: subprocess.run([*prefix, *cmd], check=True, capture_output=True, text=True)  # noqa: E731
    run(str(bindir / "initdb"), "-D", str(data), "--auth=trust", "-U", "postgres")
    opts = f"-p {port} -k {base} -c listen_addresses=127.0.0.1"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"), "-w", "start")
    try:
        run(str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "tinycompile")
        yield f"postgresql://postgres@127.0.0.1:{port}/tinycompile"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_two_workers_share_one_study(postgres_url: str, tmp_path: Path) -> None:
    args = ["search", "--task", "digits", "--space", "cnn2d", "--target", "cortex-m4", "--epochs", "6",
            "--trials", "6", "--storage", postgres_url, "--study", "shared"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "tinycompile.cli", *args, "--out", str(tmp_path / f"machine{i}")],
                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    trials = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) >= 6
    workers = {t.user_attrs["worker"] for t in trials}
    assert len(workers) == 2, f"both processes should have run trials, got {workers}"
    # each machine keeps the folders of the trials it ran
    for t in trials:
        assert any((tmp_path / f"machine{i}" / "shared" / "trials" / str(t.number)).is_dir() for i in range(2))
