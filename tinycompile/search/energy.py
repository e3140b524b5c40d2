"""What a search costs: the energy (kWh) and CO2e of each search session, measured with codecarbon, offline.

:class:`EnergyMeter` wraps one ``tinycompile search`` process: codecarbon's ``OfflineEmissionsTracker`` in its
*process* mode, which counts the CPU time of this process and of every worker it started (``--jobs``) against the
CPU's power (RAPL where the kernel exposes it, else the CPU's TDP from codecarbon's tables), the memory they hold
against a per-DIMM power model, and the GPUs it sees through NVML (the whole GPU, whoever uses it). Energy becomes
CO2e with the yearly grid mix of the country given (``--country``, ISO 3166 alpha-3; codecarbon's bundled table). No
network is used and codecarbon writes no files.

Each session records itself in the study's user attrs under its own key (``energy:<host>:<pid>:<start>``): every 30 s
while it runs (a search killed with SIGKILL keeps its energy up to then) and once at the end. A resumed search adds a
session, and the processes of a study shared by several machines each add theirs to the one database, so the sum is
what the whole study cost on every machine that searched (not the database server nor the network).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
from datetime import datetime, timezone
from typing import Any

from tinycompile.errors import UserError
from tinycompile.search.config import SearchConfig

PREFIX = "energy:"
DEFAULT_COUNTRY = "USA"
MEASURE_SECONDS = 2
RECORD_EVERY = 15  # measurements between records: one every 30 s
JOULES_PER_KWH = 3.6e6


def check_country(code: str) -> str:
    """``code`` (any case) as the ISO 3166 alpha-3 code codecarbon has a grid mix for; UserError otherwise."""
    upper = code.strip().upper()
    try:
        from codecarbon.input import DataSource

        with open(DataSource().global_energy_mix_data_path) as f:  # the table itself: without loading pandas
            mixes = json.load(f)
    except Exception:  # noqa: BLE001 - no codecarbon: the search runs unmeasured (EnergyMeter says so)
        return upper
    if upper not in mixes:
        raise UserError(f"--country {code!r} is not a country codecarbon knows the electricity of; give an ISO 3166 "
                        "alpha-3 code such as USA, DEU, FRA, GBR, IND or CHN")
    return upper


class EnergyMeter:
    """Measures one search session (a context manager) and records it in the study of ``config`` (None: not yet
    known; records wait until it is set). Without codecarbon working, the session is not measured (one line on
    stderr) and the search goes on."""

    def __init__(self, country: str = DEFAULT_COUNTRY, config: SearchConfig | None = None) -> None:
        self.config = config
        self.country = country
        self.started = datetime.now(timezone.utc)
        self.key = f"{PREFIX}{socket.gethostname()}:{os.getpid()}:{self.started.strftime('%Y%m%dT%H%M%S.%fZ')}"
        self.record: dict[str, Any] | None = None
        self._tracker: Any = None
        self._study: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> EnergyMeter:
        try:
            from codecarbon import OfflineEmissionsTracker

            # Importing it set its level from the environment; quiet it before its first message (at init).
            logging.getLogger("codecarbon").setLevel(logging.CRITICAL)
            self._tracker = OfflineEmissionsTracker(
                country_iso_code=self.country,
                project_name="tinycompile-search",
                tracking_mode="process",  # this process and its workers, not the other users of the machine
                measure_power_secs=MEASURE_SECONDS,
                api_call_interval=RECORD_EVERY,
                output_methods=[],  # no emissions.csv
                output_handlers=[_recorder(self)],
                log_level="critical",
                allow_multiple_runs=True,  # searches may run side by side (codecarbon's lock would refuse the second)
            )
            self._tracker.start()
        except Exception as exc:  # noqa: BLE001 - measuring must never stop a search
            self._tracker = None
            print(f"search energy not measured: codecarbon failed ({type(exc).__name__}: {exc})", file=sys.stderr)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tracker is not None:
            self._tracker.stop()  # calls Recorder.out with the final totals

    def _save(self, data: Any) -> None:
        """Record the session's totals so far in the study (from codecarbon's thread too: errors are dropped, the
        final record at the end is written the same way)."""
        record = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": float(data.duration),
            "energy_kwh": float(data.energy_consumed),
            "cpu_kwh": float(data.cpu_energy),
            "ram_kwh": float(data.ram_energy),
            "gpu_kwh": float(data.gpu_energy),
            "co2e_kg": float(data.emissions),
            "country": data.country_iso_code or self.country,
            "jobs": self.config.jobs if self.config else None,
            "method": f"codecarbon {data.codecarbon_version} offline, {data.tracking_mode} mode, CPU {data.cpu_model}"
                      + (f", GPU {data.gpu_model}" if data.gpu_count else ""),
        }
        with self._lock:
            self.record = record
            if self.config is None:  # the study is not known yet: a later record goes to it
                return
            try:
                if self._study is None:
                    from tinycompile.search.storage import load_study

                    self._study = load_study(self.config)
                self._study.set_user_attr(self.key, record)
            except Exception:  # noqa: BLE001 - no study yet (a search refused early), or the database is busy
                self._study = None


def _recorder(meter: EnergyMeter) -> Any:
    """A codecarbon output handler that hands the session's totals to ``meter``: from codecarbon's thread every
    :data:`RECORD_EVERY` measurements, and once more when the tracker stops."""
    from codecarbon.output_methods.base_output import BaseOutput

    class Recorder(BaseOutput):
        def live_out(self, total: Any, delta: Any) -> None:
            meter._save(total)

        def out(self, total: Any, delta: Any) -> None:
            meter._save(total)

    return Recorder()


def search_energy(study: Any, best: dict[str, Any] | None, target: str) -> dict[str, Any] | None:
    """The energy of every recorded search session of ``study``, summed, with how many inferences of ``best`` (a
    Pareto row: its cost model's ``energy_uj`` per inference on ``target``) take as much energy; None if no session
    was recorded (a study searched before energy was measured)."""
    sessions = [v for k, v in study.user_attrs.items() if k.startswith(PREFIX) and isinstance(v, dict)]
    if not sessions:
        return None

    def total(key: str) -> float:
        return float(sum(float(s.get(key) or 0.0) for s in sessions))

    summary: dict[str, Any] = {
        "energy_kwh": total("energy_kwh"),
        "cpu_kwh": total("cpu_kwh"),
        "ram_kwh": total("ram_kwh"),
        "gpu_kwh": total("gpu_kwh"),
        "co2e_kg": total("co2e_kg"),
        "seconds": total("seconds"),
        "sessions": len(sessions),
        "hosts": sorted({str(s.get("host")) for s in sessions}),
        "countries": sorted({str(s.get("country")) for s in sessions}),
        "method": sorted({str(s.get("method")) for s in sessions}),
    }
    if best is not None and best.get("energy_uj"):
        joules = summary["energy_kwh"] * JOULES_PER_KWH
        summary["best"] = {
            "trial": best["trial"],
            "target": target,
            "energy_uj": best["energy_uj"],
            "latency_ms": best["latency_ms"],
            "inferences": joules / (best["energy_uj"] * 1e-6),
        }
    return summary


def caption(summary: dict[str, Any] | None) -> str | None:
    """One line for the report's table and the plots: the search's energy, CO2e and its worth in inferences."""
    if summary is None:
        return None
    text = (f"search energy {summary['energy_kwh']:.3g} kWh, {summary['co2e_kg'] * 1000:.3g} g CO2e "
            f"({', '.join(summary['countries'])} grid; {summary['sessions']} session(s) on "
            f"{len(summary['hosts'])} machine(s), {_duration(summary['seconds'])}; codecarbon, offline)")
    best = summary.get("best")
    if best:
        text += (f" = {best['inferences']:.3g} inferences of trial {best['trial']} on {best['target']} "
                 f"({best['energy_uj']:.3g} uJ each)")
    return text


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"
