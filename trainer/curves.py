"""curves.png: training and validation bits/char and the learning rate against the epoch.

Drawn with matplotlib's Agg backend (no display, no GUI toolkit) through its object API, so it
never touches pyplot's global figure state, and written atomically like every run file.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Sequence
from pathlib import Path

from gru_edge.runtime.errors import MissingExtraError
from gru_edge.runtime.files import atomic_path
from gru_edge.trainer.rundir import CURVES

_LN2 = math.log(2)


def check_plotting(what: str) -> None:
    """MissingExtraError unless matplotlib (part of the [train] extra) is installed: checked
    before a run starts, not after its first epoch."""
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingExtraError(
            f"{what} draws curves.png with matplotlib, which this install lacks; "
            "install the training extra: pip install 'gru-edge[train]'"
        )


def write_curves(out: Path, history: Sequence[dict[str, float]], best_epoch: int) -> Path:
    """Draw ``history`` (history.csv's rows) into ``out``/curves.png; return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    epochs = [int(row["epoch"]) for row in history]
    train = [row["loss"] / _LN2 for row in history]
    val = [row["val_loss"] / _LN2 for row in history]
    figure = Figure(figsize=(7, 4), dpi=100)
    # Fixed margins: a layout engine would cost more than the drawing, after every epoch.
    figure.subplots_adjust(left=0.1, right=0.88, top=0.92, bottom=0.12)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    handles = axes.plot(epochs, train, "o-", color="tab:blue", label="training", markersize=3)
    if not all(math.isnan(v) for v in val):
        handles += axes.plot(
            epochs, val, "o-", color="tab:orange", label="validation", markersize=3
        )
    if best_epoch:
        handles.append(
            axes.axvline(
                best_epoch,
                color="gray",
                linestyle="--",
                linewidth=1,
                label=f"best epoch {best_epoch}",
            )
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
    # Plain numbers, major ticks only: mathtext labels (10^-2) cost more than the whole plot.
    rate.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    rate.yaxis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
    rate.yaxis.set_minor_formatter(NullFormatter())
    rate.set_ylabel("learning rate", color="tab:green")
    axes.legend(handles, [line.get_label() for line in handles], loc="best")
    axes.set_title("gru-edge train")
    path = out / CURVES
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        figure.savefig(handle, format="png")
    return path
