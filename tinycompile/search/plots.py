"""Plots of a study with Optuna's own visualisation: PNG through matplotlib, interactive HTML through plotly."""

from __future__ import annotations

import textwrap
import warnings
from pathlib import Path

import optuna

from tinycompile.fileio import write_with
from tinycompile.search.pareto import constraints_of


def write_plots(study: optuna.Study, run_dir: Path, objective: str, caption: str | None = None) -> list[Path]:
    """Write the Pareto front and the optimisation history as PNG and HTML, with ``caption`` (the search's energy)
    under each; return the files written."""
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
            if caption:
                figure.text(0.5, -0.02, textwrap.fill(caption, 110), ha="center", va="top", fontsize=8)
            write_with(png, lambda tmp: figure.savefig(tmp, format="png", dpi=110, bbox_inches="tight"))
            plt.close(figure)
            page = plot(optuna.visualization)
            if caption:
                page.add_annotation(text="<br>".join(textwrap.wrap(caption, 140)), xref="paper", yref="paper", x=0,
                                    y=0, yshift=-70, xanchor="left", yanchor="top", showarrow=False, align="left",
                                    font={"size": 11})
                page.update_layout(margin={"b": 130})
            # plotly.min.js is written once beside the pages, so they open offline.
            write_with(html, lambda tmp: page.write_html(tmp, include_plotlyjs="directory"))
            written += [png, html]
    return written
