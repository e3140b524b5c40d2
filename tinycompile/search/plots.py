"""Plots of a study with Optuna's own visualisation: PNG through matplotlib, interactive HTML through plotly."""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna

from tinycompile.fileio import write_with
from tinycompile.search.pareto import constraints_of


def write_plots(study: optuna.Study, run_dir: Path, objective: str) -> list[Path]:
    """Write the Pareto front and the optimisation history as PNG and HTML; return the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as opt_mpl

    names = ["validation accuracy", "predicted latency (ms)" if objective == "latency" else "predicted energy (uJ)"]
    history_args = {"target": lambda t: t.values[0], "target_name": names[0]}
    plots = {
        "pareto_front": lambda m: m.plot_pareto_front(study, target_names=names, constraints_func=constraints_of),
        "history": lambda m: m.plot_optimization_history(study, **history_args),
    }
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks these plot helpers experimental
        for name, plot in plots.items():
            png, html = run_dir / f"{name}.png", run_dir / f"{name}.html"
            ax = plot(opt_mpl)
            figure = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
            figure.set_size_inches(8, 5.5)
            write_with(png, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
            plt.close(figure)
            # plotly.min.js is written once beside the pages, so they open offline.
            write_with(html, lambda tmp: plot(optuna.visualization).write_html(tmp, include_plotlyjs="directory"))
            written += [png, html]
    return written
