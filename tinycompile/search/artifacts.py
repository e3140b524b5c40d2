"""Trial files kept in the study's own database, so that every worker, machine and later command can read them.

A trial folder (``spec.json``, ``weights.pt``, ``metrics.json``) is written where the trial trained; those files were
lost to every other machine of a shared study (``best`` dangled, ``build`` failed). Now the worker also uploads them
through Optuna's artifact API into :class:`DatabaseArtifactStore`, a table beside Optuna's in the same SQLite file or
PostgreSQL database (the one thing every worker already reaches; a tiny network's files are kilobytes), and records
their ids in the trial's user attr :data:`ARTIFACTS`. ``report`` and ``build`` materialise a missing
``runs/<study>/trials/<n>/`` from there.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

import optuna
import sqlalchemy as sa
from optuna.artifacts import download_artifact, upload_artifact
from optuna.artifacts.exceptions import ArtifactNotFound

from tinycompile.errors import UserError
from tinycompile.search.config import SearchConfig, load_run_config
from tinycompile.search.records import finetuned
from tinycompile.search.storage import engine_kwargs, load_study, open_with_retry
from tinycompile.trial import METRICS, SPEC, WEIGHTS

ARTIFACTS = "artifacts"  # user attr: {file name: artifact id} of a trained trial
FILES = (SPEC, WEIGHTS, METRICS)  # in writing order: metrics.json last, its presence marks a complete folder
TABLE = "tinycompile_artifacts"


class DatabaseArtifactStore:
    """An Optuna artifact store (``optuna.artifacts``' ``ArtifactStore`` protocol) holding each artifact as one row.

    Optuna ships file-system and cloud stores; a study on PostgreSQL should not need a shared disk or a bucket too.
    Rows are not attributes: samplers read all of a study's attributes at every trial, never this table.
    """

    def __init__(self, url: str) -> None:
        self._engine = sa.create_engine(url, **engine_kwargs(url))
        self._table = sa.Table(
            TABLE,
            sa.MetaData(),
            sa.Column("artifact_id", sa.String(64), primary_key=True),
            sa.Column("data", sa.LargeBinary, nullable=False),
        )
        open_with_retry(url, lambda: self._table.create(self._engine, checkfirst=True))

    def open_reader(self, artifact_id: str) -> BinaryIO:
        """The artifact's bytes; ``ArtifactNotFound`` if there is no such artifact."""
        with self._engine.connect() as conn:
            data = conn.execute(sa.select(self._table.c.data).where(self._table.c.artifact_id == artifact_id)).scalar()
        if data is None:
            raise ArtifactNotFound(f"no artifact {artifact_id}")
        return io.BytesIO(data)

    def write(self, artifact_id: str, content_body: BinaryIO) -> None:
        """Store ``content_body`` under ``artifact_id`` (a fresh UUID from ``upload_artifact``)."""
        with self._engine.begin() as conn:
            conn.execute(sa.insert(self._table).values(artifact_id=artifact_id, data=content_body.read()))

    def remove(self, artifact_id: str) -> None:
        """Delete the artifact; ``ArtifactNotFound`` if there is no such artifact."""
        with self._engine.begin() as conn:
            deleted = conn.execute(sa.delete(self._table).where(self._table.c.artifact_id == artifact_id)).rowcount
        if not deleted:
            raise ArtifactNotFound(f"no artifact {artifact_id}")


def publish(trial: optuna.trial.Trial, folder: Path, store: DatabaseArtifactStore) -> None:
    """Upload a saved trial folder's files and record their ids on the trial."""
    ids = {name: upload_artifact(artifact_store=store, file_path=str(folder / name), study_or_trial=trial)
           for name in FILES}
    trial.set_user_attr(ARTIFACTS, ids)


def fetch(trial: optuna.trial.FrozenTrial, folder: Path, store: DatabaseArtifactStore,
          ids: dict[str, str] | None = None) -> Path:
    """Materialise ``folder`` from the trial's stored files (or those of ``ids``: a fine-tuned supernet candidate's)
    unless it is already complete; return it."""
    if (folder / METRICS).is_file():
        return folder
    ids = ids or trial.user_attrs.get(ARTIFACTS)
    if not ids:
        why = "it was never trained (over budget?)" if not trial.user_attrs.get("trained") else "its files were not stored"
        raise UserError(f"{folder}: trial {trial.number} has no files to fetch, {why}; pick a trial from pareto.json")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        for name in FILES:
            download_artifact(artifact_store=store, file_path=str(tmp / name), artifact_id=ids[name])
        folder.mkdir(exist_ok=True)
        for name in FILES:  # whole files only, metrics.json last: a reader never sees a half folder as complete
            os.replace(tmp / name, folder / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def fetch_numbers(study: optuna.Study, config: SearchConfig, numbers: list[int]) -> None:
    """Materialise the folders of trials ``numbers`` of the run's study in its run folder."""
    if all((config.run_dir / "trials" / str(n) / METRICS).is_file() for n in numbers):
        return  # the machine that trained them: nothing to open
    store = DatabaseArtifactStore(config.storage_url)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for n in numbers:
        fetch(trials[n], config.run_dir / "trials" / str(n), store, (finetuned(study, n) or {}).get(ARTIFACTS))


def local_trial_folder(path: str | Path) -> Path:
    """A complete trial folder for ``path`` on this machine: as it is, or fetched from its run's study.

    ``path`` is ``runs/<study>/trials/<n>`` or ``runs/<study>/best`` (a link to one, dangling on a machine that did
    not train it). Anything else is returned as it is, for the caller to report what is wrong with it.
    """
    path = Path(path)
    if (path / METRICS).is_file():
        return path
    located = _locate(path)
    if located is None:
        return path
    config, number = located
    study = load_study(config)
    if number is None:  # no `best` link yet on this machine: the most accurate Pareto trial, as `report` links it
        from tinycompile.search.pareto import final_front

        front = final_front(study)
        if not front:
            raise UserError(f"{config.run_dir}: the study has no trained feasible trial yet")
        number = front[0].number
    fetch_numbers(study, config, [number])
    return config.run_dir / "trials" / str(number)


def _locate(path: Path) -> tuple[SearchConfig, int | None] | None:
    """The run config and trial number that ``path`` names (number ``None``: the run's best), or ``None``."""
    if path.name == "best" and (path.parent / "config.json").is_file():
        run_dir = path.parent
        number = int(Path(os.readlink(path)).name) if path.is_symlink() else None
    elif path.parent.name == "trials" and path.name.isdigit() and (path.parent.parent / "config.json").is_file():
        run_dir, number = path.parent.parent, int(path.name)
    else:
        return None
    return load_run_config(run_dir), number
