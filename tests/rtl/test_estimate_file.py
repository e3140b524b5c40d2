"""rtl_sim/synth/estimate.py keeps the rows of the array sizes a run did not synthesise (a run for N = 8 once wrote
its row alone over the N = 4 one)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("estimate_script", ROOT / "rtl_sim" / "synth" / "estimate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_run_replaces_only_its_sizes(tmp_path) -> None:
    merged = _module().merged
    path = tmp_path / "estimate.json"
    assert merged(path, [{"n": 8, "fmax": 52.3}]) == [{"n": 8, "fmax": 52.3}]  # no file yet
    path.write_text(json.dumps([{"n": 4, "fmax": 46.2}, {"n": 8, "fmax": 47.4}]))
    assert merged(path, [{"n": 8, "fmax": 52.3}, {"n": 16, "fmax": 30.0}]) == [
        {"n": 4, "fmax": 46.2}, {"n": 8, "fmax": 52.3}, {"n": 16, "fmax": 30.0}]
