"""curves.png: training and validation bits/char and the learning rate against the epoch.

Drawn with matplotlib's Agg backend (no display, no GUI toolkit) through its object API, so it
never touches pyplot's global figure state, and written atomically like every run file.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from gru_edge.runtime.files import atomic_path
from gru_edge.trainer.rundir import CURVES

_LN2 = math.log(2)


def write_curves(out: Path, history: Sequence[dict[str, float]], best_epoch: int) -> Path:
    """Draw ``history`` (history.csv's rows) into ``out``/curves.png; return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    epochs = [int(row["epoch"]) for row in history]
    train = [row["loss"] / _LN2 for row in history]
    val = [row["val_loss"] / _LN2 for row in history]
    figure = Figure(figsize=(7, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    handles = axes.plot(epochs, train, "o-", color="tab:blue", label="training", markersize=3)
    if not all(math.isnan(v) for v in val):
        handles += axes.plot(
            epochs, val, "o-", color="tab:orange", label="validation", markersize=3
        )
    if best_epoch:
        axes.axvline(best_epoch, color="gray", linestyle="--", linewidth=1)
        axes.annotate(
            f"best epoch {best_epoch}",
            (best_epoch, 1),
            xycoords=("data", "axes fraction"),
            xytext=(4, -12),
            textcoords="offset points",
            color="gray",
        )
    axes.set_xlabel("epoch")
    axes.set_ylabel("bits per character")
    axes.xaxis.get_major_locator().set_params(integer=True)
    rate = axes.twinx()
    handles += rate.step(
        epochs,
        [row["lr"] for row in history],
        where="post",
        color="tab:green",
        linewidth=1,
        label="learning rate",
    )
    rate.set_yscale("log")
    rate.set_ylabel("learning rate", color="tab:green")
    axes.legend(handles, [line.get_label() for line in handles], loc="upper right")
    axes.set_title("gru-edge train")
    path = out / CURVES
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        figure.savefig(handle, format="png")
    return path
