"""`tinycompile report` regenerates a run's outputs from its study, and refuses rather than overwrite them with less."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinycompile.cli import main
from tinycompile.search.config import SearchConfig
from tinycompile.search.storage import open_study

PARETO = {"study": "s", "front": [{"trial": 3, "val_acc": 0.9}]}


def run_folder(tmp_path: Path) -> Path:
    """A run folder as `search` leaves it: config.json, study.db (an empty study here) and a pareto.json."""
    config = SearchConfig(task="digits", space="cnn2d", target="cortex-m4", study="s", out=str(tmp_path))
    config.run_dir.mkdir(parents=True)
    open_study(config)
    (config.run_dir / "config.json").write_text(json.dumps(config.to_dict()))
    (config.run_dir / "pareto.json").write_text(json.dumps(PARETO))
    return config.run_dir


def refused(run_dir: Path, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["report", str(run_dir)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err, err
    assert json.loads((run_dir / "pareto.json").read_text()) == PARETO  # the results are kept as they were
    return err


def test_a_missing_study_db_is_refused_and_not_recreated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run_dir = run_folder(tmp_path)
    (run_dir / "study.db").unlink()
    assert "study.db does not exist, so study 's' is gone" in refused(run_dir, capsys)
    assert not (run_dir / "study.db").exists()


def test_a_study_without_finished_trials_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "study 's' holds no finished trials" in refused(run_folder(tmp_path), capsys)


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "not a search's config.json (JSONDecodeError"),
    ("[1, 2]", "config.json must hold a JSON object, but holds list"),
    ('{"task": "digits", "colour": "red"}', "unexpected keyword argument 'colour'"),
    ('{"task": 3, "space": "cnn2d", "target": "cortex-m4"}', "task, space, target and objective must be strings"),
])
def test_a_garbage_config_json_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str) -> None:
    run_dir = run_folder(tmp_path)
    (run_dir / "config.json").write_text(text)
    assert message in refused(run_dir, capsys)
