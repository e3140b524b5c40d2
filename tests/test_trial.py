"""A damaged trial folder is one line and exit code 2 from `tinycompile build`, before anything is built or written."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from nets import SPECS
from tinycompile.cli import main
from tinycompile.model import SpecNet
from tinycompile.trial import save_trial


@pytest.fixture
def trial(tmp_path: Path) -> Path:
    """An untrained digits trial (loading it does not care how well it was trained)."""
    torch.manual_seed(0)
    save_trial(tmp_path / "trial", SPECS["digits"], SpecNet(SPECS["digits"]), {"task": "digits", "val_acc": 0.1})
    return tmp_path / "trial"


def spec_edit(edit: Callable[[dict], None]) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        spec = json.loads((folder / "spec.json").read_text())
        edit(spec)
        (folder / "spec.json").write_text(json.dumps(spec))

    return damage


def layer0(**changes) -> Callable[[Path], None]:
    return spec_edit(lambda spec: spec["layers"][0].update(changes))


def write(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


def truncate(name: str) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes((folder / name).read_bytes()[:100])


def weights_of_another_trial(folder: Path) -> None:
    torch.save(SpecNet(SPECS["mnist1d"]).state_dict(), folder / "weights.pt")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (write("spec.json", b"{garbage"), "spec.json: not a network spec (Expecting property name"),
        (write("spec.json", b""), "spec.json: not a network spec (Expecting value"),
        (write("spec.json", b"[1, 2, 3]"), "a spec must be a JSON object"),
        (write("spec.json", b"\xff\xfe\x00"), "spec.json: not a network spec ("),
        (layer0(channels="8"), "layer 0: channels must be an integer >= 0, but got '8'"),
        (layer0(kernel=[3.0, 3.0]), "layer 0: kernel must be an integer >= 1, but got 3.0"),
        (layer0(relu="yes"), "layer 0: relu must be true or false, but got 'yes'"),
        (layer0(colour="red"), "layer 0: unknown key 'colour'"),
        (layer0(op="transformer"), "layer 0: unknown op 'transformer'"),
        (layer0(op="lut", channels=0), "layer 0 (lut) has no torch module"),
        (layer0(channels=-3), "layer 0: channels must be an integer >= 0, but got -3"),
        (spec_edit(lambda s: s["layers"][5].update(channels=0)), "layer 5 (dense): channels must be >= 1, but got 0"),
        (layer0(channels=1e9), "layer 0: channels must be an integer >= 0, but got 1000000000.0"),
        (layer0(channels=10**9), "tensor ops.0.1.weight must be shaped [1000000000, 1, 3, 3], but is shaped [8, 1, 3, 3]"),
        (spec_edit(lambda s: s.update(input_shape=[1, 9, 9])), "takes [1, 9, 9] inputs into 10 classes, but task digits has [1, 8, 8]"),
        (spec_edit(lambda s: s["meta"].update(resolution="12")), "meta.resolution must be an integer from 1 to 256"),
        (spec_edit(lambda s: s["meta"].update(resolution=10**6)), "meta.resolution must be an integer from 1 to 256"),
        (spec_edit(lambda s: s["meta"].update(resolution=12)),  # the images resized, the network not
         "takes [1, 8, 8] inputs into 10 classes, but task digits has [1, 12, 12]"),
        (truncate("weights.pt"), "weights.pt: not a readable weights file"),
        (write("weights.pt", b""), "weights.pt: not a readable weights file"),
        (weights_of_another_trial, "weights.pt does not fit spec.json: tensor ops.0.1.weight must be shaped [8, 1, 3, 3]"),
        (write("metrics.json", b"{garbage"), "metrics.json: not readable JSON"),
        (write("metrics.json", b"[]"), "metrics.json must hold a JSON object, but holds list"),
    ],
)
def test_a_damaged_trial_is_one_line_and_builds_nothing(trial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                        damage, message: str) -> None:
    damage(trial)
    assert main(["build", str(trial), "--target", "cortex-m4", "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and message in err, err
    assert not (tmp_path / "out").exists()
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name]
