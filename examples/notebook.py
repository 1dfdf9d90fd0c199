"""gru-edge from a notebook: train, look at the curves, export, sample.

Each ``# %%`` starts a cell (Jupyter, VS Code and PyCharm run them one by one); run as a
script it runs them all. The settings train a tiny model in seconds; drop ``TINY`` from the
``train`` call for the quickstart's model (the notebook's defaults, a few minutes on 2 cores).
GRU_EDGE_CORPUS and GRU_EDGE_WORK say where the corpus is and where the files go.
"""

# %% Train: the options are `gru-edge train`'s, by their Python names.
import os
from pathlib import Path

from gru_edge import GruEdgeError, export, train

corpus = Path(os.environ.get("GRU_EDGE_CORPUS", "poems.txt"))
work = Path(os.environ.get("GRU_EDGE_WORK", "runs"))
TINY = dict(units=32, seq_len=40, epochs=3, steps_per_epoch=15, validation_steps=5, seed=1)

run = train(corpus, work / "notebook", force=True, quiet=True, **TINY)
print(f"{run.epochs_completed} epochs, best {run.best_epoch}: {run.best_val_bpc:.3f} bits/char")
print(run.stop_reason)

# %% The curves: training and validation bits/char and the learning rate, best epoch marked.
try:
    from IPython.display import Image, display

    display(Image(filename=str(run.curves)))
except ImportError:  # not in a notebook: open the file
    print(f"curves: {run.curves}")

# %% Every epoch's numbers are in run.history (history.csv's rows).
for row in run.history:
    print(f"epoch {row['epoch']}: loss {row['loss']:.3f}, val_loss {row['val_loss']:.3f}")

# %% Mistakes raise the CLI's errors, one line each (GruEdgeError subclasses).
try:
    train(corpus, work / "notebook", units=-1)
except GruEdgeError as error:
    print(f"{type(error).__name__}: {error}")

# %% Export to one ONNX file (validated against Keras), then sample it without TensorFlow.
from gru_edge import Generator  # noqa: E402  (a cell's imports sit in the cell)

model_path = export(run.run_dir, work / "notebook.onnx", force=True)
generator = Generator.load(model_path)
print(generator.generate("The woods are ", 200, temperature=0.5, seed=1))
