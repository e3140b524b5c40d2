"""What a search costs: every search session's energy and CO2e (codecarbon, offline) is recorded in the study and
reported in pareto.json, the report's table and the plots, with its worth in inferences of the best model; a resumed
search adds to it. The search runs on BasicMotions, the sensor task shipped inside sktime."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest

from support import run_cli
from tinycompile.errors import UserError
from tinycompile.search.energy import PREFIX, caption, check_country, search_energy

SMOKE = ["--task", "basicmotions", "--space", "cnn1d", "--target", "cortex-m4", "--epochs", "1"]


def session(kwh: float, country: str = "USA", host: str = "a") -> dict:
    return {"host": host, "pid": 1, "seconds": 60.0, "energy_kwh": kwh, "cpu_kwh": kwh / 2, "ram_kwh": kwh / 2,
            "gpu_kwh": 0.0, "co2e_kg": kwh * 0.4, "country": country, "method": "codecarbon"}


def test_sessions_add_up_and_convert_to_inferences() -> None:
    study = optuna.create_study(directions=["maximize", "minimize"])
    assert search_energy(study, None, "cortex-m4") is None and caption(None) is None  # a study from before
    study.set_user_attr("config", {"task": "digits"})
    study.set_user_attr(f"{PREFIX}a:1:t0", session(0.001))
    study.set_user_attr(f"{PREFIX}b:2:t1", session(0.002, "FRA", "b"))
    best = {"trial": 4, "energy_uj": 36.0, "latency_ms": 0.5}
    summary = search_energy(study, best, "cortex-m4")
    assert summary["energy_kwh"] == pytest.approx(0.003) and summary["co2e_kg"] == pytest.approx(0.0012)
    assert summary["sessions"] == 2 and summary["hosts"] == ["a", "b"] and summary["countries"] == ["FRA", "USA"]
    assert summary["best"]["inferences"] == pytest.approx(0.003 * 3.6e6 / 36e-6)  # 3e8 inferences of 36 uJ
    text = caption(summary)
    assert "search energy 0.003 kWh, 1.2 g CO2e" in text and "= 3e+08 inferences of trial 4 on cortex-m4" in text


def test_country_codes_are_checked() -> None:
    assert check_country("fra") == "FRA"
    with pytest.raises(UserError, match="not a country codecarbon knows"):
        check_country("XX")


def energy_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "pareto.json").read_text())["search_energy"]


def test_a_search_reports_its_energy_and_a_resumed_one_adds_to_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "bm"
    first = run_cli("search", *SMOKE, "--trials", "2", "--study", "bm", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    energy = energy_of(run_dir)
    assert energy["sessions"] == 1 and energy["countries"] == ["USA"] and energy["energy_kwh"] > 0
    assert energy["co2e_kg"] > 0 and energy["seconds"] > 0 and "process mode" in energy["method"][0]
    front = json.loads((run_dir / "pareto.json").read_text())["front"]
    assert energy["best"]["trial"] == front[0]["trial"] and energy["best"]["target"] == "cortex-m4"
    assert energy["best"]["inferences"] == pytest.approx(energy["energy_kwh"] * 3.6e6 / (front[0]["energy_uj"] * 1e-6))
    assert "search energy" in first.stdout and "inferences of trial" in first.stdout
    assert not list(tmp_path.rglob("emissions*.csv")) and not list(Path.cwd().glob("emissions*.csv"))
    assert "[codecarbon" not in first.stderr + first.stdout  # its logging is silenced

    report = run_cli("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    assert "search energy" in report.stdout and energy_of(run_dir) == energy  # report measures nothing itself
    assert "search energy" in (run_dir / "pareto_front.html").read_text()

    again = run_cli("search", *SMOKE, "--trials", "3", "--study", "bm", "--out", str(tmp_path), "--country", "fra")
    assert again.returncode == 0, again.stderr
    total = energy_of(run_dir)
    assert total["sessions"] == 2 and total["countries"] == ["FRA", "USA"]
    assert total["energy_kwh"] > energy["energy_kwh"] and total["seconds"] > energy["seconds"]
    study = optuna.load_study(study_name="bm", storage=f"sqlite:///{run_dir / 'study.db'}")
    sessions = [v for k, v in study.user_attrs.items() if k.startswith(PREFIX)]
    assert sorted(s["country"] for s in sessions) == ["FRA", "USA"]
    assert sum(s["energy_kwh"] for s in sessions) == pytest.approx(total["energy_kwh"])
