"""The run folder is named from the names inside the space and target YAMLs, never from the paths given for them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinycompile.cli import main
from tinycompile.search.config import SearchConfig, prepare

ROOT = Path(__file__).resolve().parent.parent


def own_files(tmp_path: Path, space_name: str = "mine", target_name: str = "my-chip") -> tuple[Path, Path]:
    """A search space and a target of the user's, in tmp_path, with the given names."""
    space = tmp_path / "m.yaml"
    space.write_text((ROOT / "search_spaces" / "mlp.yaml").read_text().replace("name: mlp", f"name: {space_name}"))
    target = tmp_path / "t.yaml"
    target.write_text((ROOT / "hw_targets" / "cortex-m4.yaml").read_text().replace("name: cortex-m4", f"name: {target_name}"))
    return space, target


def test_a_space_given_as_a_relative_path_stays_inside_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--space ../../../m.yaml` used to put the run folder three levels above --out."""
    space, target = own_files(tmp_path)
    work = tmp_path / "a" / "b" / "c"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    args = ["search", "--task", "digits", "--space", "../../../m.yaml", "--target", "../../../t.yaml", "--trials", "1",
            "--epochs", "1", "--out", "runs"]
    assert main(args) == 0
    run_dir = work / "runs" / "digits-mine-my-chip-latency-s0"
    assert (run_dir / "study.db").is_file() and (run_dir / "pareto.json").is_file()
    assert [p.name for p in (work / "runs").iterdir()] == [run_dir.name]  # one folder, nothing nested
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "m.yaml", "t.yaml"]  # nothing written outside --out


def test_names_from_the_files_are_made_safe_folder_names(tmp_path: Path) -> None:
    space, target = own_files(tmp_path, space_name="'../../evil space'", target_name="'chip/v2'")
    config = SearchConfig(task="digits", space=str(space), target=str(target), out=str(tmp_path / "runs"))
    run_dir = prepare(config).config.run_dir
    assert run_dir == tmp_path / "runs" / "digits-evil-space-chip-v2-latency-s0"


def test_the_shipped_names_keep_their_run_folders(tmp_path: Path) -> None:
    config = SearchConfig(task="digits", space="cnn2d", target="cortex-m4", out=str(tmp_path))
    assert prepare(config).config.run_dir == tmp_path / "digits-cnn2d-cortex-m4-latency-s0"  # resumable as before


@pytest.mark.parametrize("study", ["../x", "a/b", "..", ""])
def test_a_study_name_that_is_a_path_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], study: str) -> None:
    args = ["search", "--task", "digits", "--space", "mlp", "--target", "cortex-m4", "--study", study, "--trials", "1",
            "--epochs", "1", "--out", str(tmp_path / "runs")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"--study must be a plain name (it names the run folder inside --out), but got {study!r}" in err
    assert list(tmp_path.iterdir()) == []
