"""Keras files from elsewhere: checked as data (zip magic, the archive's config.json) before
Keras reads them, so a Lambda or a legacy HDF5 file never runs. Tests without the `train`
marker need no TensorFlow: every check happens before gru-edge imports it."""

from __future__ import annotations

import json
import shutil
import warnings
import zipfile
from pathlib import Path

import pytest
from cli_checks import assert_one_line_error
from run_dirs import checkpoint_of, command_args, contents, copy_run
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.errors import RunDirError
from gru_edge.trainer.keras_files import check_keras_file

runner = CliRunner()


def _layer(cls: str, config: dict) -> dict:
    return {"module": "keras.layers", "class_name": cls, "config": config, "registered_name": None}


def _init(cls: str) -> dict:
    return {
        "module": "keras.initializers",
        "class_name": cls,
        "config": {},
        "registered_name": None,
    }


def _model_config(vocab: int = 5, units: int = 4) -> dict:
    """What tf-keras writes into a gru-edge model.keras, in brief."""
    gru = {
        "units": units,
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "kernel_initializer": _init("GlorotUniform"),
        "recurrent_initializer": _init("Orthogonal"),
        "bias_initializer": _init("Zeros"),
    }
    layers = [
        _layer("InputLayer", {"batch_input_shape": [None, None, vocab], "name": "one_hot"}),
        _layer("GRU", gru),
        _layer("Dense", {"units": vocab, "activation": "softmax"}),
    ]
    optimizer = {
        "module": "keras.optimizers",
        "class_name": "RMSprop",
        "config": {"learning_rate": 0.01},
        "registered_name": None,
    }
    return {
        "module": "keras",
        "class_name": "Sequential",
        "config": {"name": "char_gru", "layers": layers},
        "registered_name": None,
        "compile_config": {"optimizer": optimizer, "loss": "categorical_crossentropy"},
    }


def _write_keras(path: Path, config=None, members=None) -> Path:
    members = members or {
        "metadata.json": b"{}",
        "config.json": json.dumps(config or _model_config()).encode(),
        "model.weights.h5": b"\x89HDF\r\n\x1a\n" + b"\0" * 200,
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def _edit(change):
    config = _model_config()
    change(config)
    return config


def _layers(config: dict) -> list:
    return config["config"]["layers"]


def _gru(config: dict) -> dict:
    return _layers(config)[1]["config"]


def _stack(*extra: dict):
    """An edit that adds layers after the GRU, as `train --layers/--dropout` does."""

    def change(config: dict) -> None:
        _layers(config)[2:2] = extra

    return change


def _flip_weights_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    at = data.index(b"\x89HDF") + 50  # inside the stored weights member
    data[at] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_model_config_template_passes(tmp_path):
    # The refusals below differ from this accepted file by one change each.
    check_keras_file(_write_keras(tmp_path / "model.keras"), "FIX", units=4, vocab_size=5)


LAMBDA = {"function": ["BASE64 BYTECODE", None, None], "function_type": "lambda"}


@pytest.mark.parametrize(
    ("make", "needles"),
    [
        (lambda p: p.write_bytes(b"hello, world"), ["is not a .keras zip archive"]),
        (lambda p: p.write_bytes(b""), ["is not a .keras zip archive"]),
        (lambda p: p.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100), ["legacy HDF5", "run code"]),
        (lambda p: None, ["is missing"]),
        (
            lambda p: p.write_bytes(_write_keras(p).read_bytes()[:300]),
            ["damaged or truncated zip"],
        ),
        (lambda p: _flip_weights_byte(_write_keras(p)), ["fails its CRC check"]),
        (
            lambda p: _write_keras(p, members={"config.json": b"{}"}),
            ["not a gru-edge model's"],
        ),
        (
            lambda p: _write_keras(
                p,
                members={
                    "config.json": json.dumps(_model_config()).encode(),
                    "model.weights.h5": b"",
                    "assets/run_me.py": b"",
                },
            ),
            ["assets/run_me.py"],
        ),
        (
            lambda p: _write_keras(p, members={"config.json": b"{oops", "model.weights.h5": b""}),
            ["config.json is not valid JSON"],
        ),
        (lambda p: _write_keras(p, config=[1, 2]), ["not a Keras model config"]),
        (
            lambda p: _write_keras(
                p, _edit(lambda c: _layers(c).insert(1, _layer("Lambda", LAMBDA)))
            ),
            ["a keras.layers.Lambda layer"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _layers(c)[1].update(module="os"))),
            ["a os.GRU layer"],
        ),
        (
            lambda p: _write_keras(
                p, _edit(lambda c: _layers(c)[1].update(registered_name="mine>GRU"))
            ),
            ["keras.layers.GRU layer"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _layers(c)[1].update(class_name=["GRU"]))),
            ["keras.layers.['GRU'] layer"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _layers(c).insert(1, _layers(c)[1]))),
            ["has 2 GRU layers", "config.json says 1"],
        ),
        (
            lambda p: _write_keras(p, _edit(_stack(*[_layer("GRU", {"units": 4})] * 8))),
            ["layers ['InputLayer', " + "'GRU', " * 9 + "'Dense']", "1 to 8 GRUs"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _layers(c).pop(1))),
            ["layers ['InputLayer', 'Dense']"],
        ),
        (
            lambda p: _write_keras(p, _edit(_stack(_layer("GRU", {"units": 8})))),
            ["has 2 GRU layers", "config.json says 1"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: c.update(module="evil"))),
            ["a evil.Sequential model"],
        ),
        (
            lambda p: _write_keras(
                p,
                _edit(
                    lambda c: _gru(c).update(
                        kernel_initializer={"module": "builtins", "class_name": "function"}
                    )
                ),
            ),
            ["builtins.function object under 'kernel_initializer'"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _gru(c).update(cell=_layer("Lambda", {})))),
            ["keras.layers.Lambda object under 'cell'"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _gru(c).update(activation="evil>fn"))),
            ["activation 'evil>fn'"],
        ),
        (
            lambda p: _write_keras(
                p, _edit(lambda c: c["compile_config"].update(loss="my_pkg>my_loss"))
            ),
            ["loss 'my_pkg>my_loss'"],
        ),
        (
            lambda p: _write_keras(
                p, _edit(lambda c: c["compile_config"].update(metrics=["my_pkg>metric"]))
            ),
            ["metrics 'my_pkg>metric'"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _gru(c).update(units=8))),
            ["has a GRU of 8 units", "says 4"],
        ),
        (
            lambda p: _write_keras(p, _edit(lambda c: _layers(c)[2]["config"].update(units=6))),
            ["predicts 6 characters", "vocabulary has 5"],
        ),
    ],
)
def test_keras_files_are_refused_before_keras_reads_them(tmp_path, make, needles):
    path = tmp_path / "model.keras"
    make(path)
    with pytest.raises(RunDirError) as caught:
        check_keras_file(path, "FIX", units=4, vocab_size=5, layers=1)
    message = str(caught.value)
    assert "\n" not in message and message.endswith("; FIX")
    for needle in needles:
        assert needle in message, (needle, message)


def test_a_keras_file_is_known_by_content_not_by_name(tmp_path):
    # A valid archive under another name is refused too: Keras picks its loader by the name.
    path = _write_keras(tmp_path / "model.h5")
    with pytest.raises(RunDirError, match="is not a .keras file"):
        check_keras_file(path, "FIX")


# --- with TensorFlow: the files' code would run, and does not ---------------------------------


@pytest.fixture(scope="module")
def unsafe_files(tmp_path_factory, trained_run):
    """A model with a Lambda that touches a marker file when Keras rebuilds it: saved as legacy
    HDF5 and as a .keras zip. Returns {kind: path} and the marker."""
    from gru_edge.trainer.tf_env import load_tf

    _, keras = load_tf()
    folder = tmp_path_factory.mktemp("unsafe")
    marker = folder / "marker"
    vocab = len(json.loads((trained_run / "vocab.json").read_text(encoding="utf-8")))
    # Built from source so its bytecode holds the marker's path (Keras marshals the lambda).
    touch = eval(f"lambda x: (__import__('pathlib').Path({str(marker)!r}).touch(), x)[1]")
    model = keras.Sequential(
        [
            keras.Input(shape=(None, vocab)),
            keras.layers.Lambda(touch),
            keras.layers.GRU(16),
            keras.layers.Dense(vocab, activation="softmax"),
        ]
    )
    model.compile(optimizer=keras.optimizers.RMSprop(), loss="categorical_crossentropy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "HDF5 is legacy": the point here
        model.save(folder / "lambda.h5")
    model.save(folder / "lambda.keras")
    marker.unlink()  # building the model ran the lambda once
    return {"hdf5": folder / "lambda.h5", "zip": folder / "lambda.keras"}, marker


@pytest.mark.parametrize(
    ("kind", "needle"), [("hdf5", "legacy HDF5"), ("zip", "a keras.layers.Lambda layer")]
)
@pytest.mark.parametrize("command", ["export", "resume", "bench"])
def test_code_in_a_keras_file_never_runs(
    tmp_path, trained_run, tiny_corpus, exported_model, unsafe_files, kind, needle, command
):
    from gru_edge.trainer.tf_env import load_tf

    files, marker = unsafe_files
    run = copy_run(tmp_path, trained_run)
    target = checkpoint_of(run) if command == "resume" else run / "model.keras"
    shutil.copy(files[kind], target)
    # Loaded as gru-edge used to load it (HDF5 named .keras), or as Keras allows (safe_mode
    # off), the file runs its code: so this test can fail.
    _, keras = load_tf()
    keras.models.load_model(
        target, compile=False, **({"safe_mode": False} if kind == "zip" else {})
    )
    assert marker.exists()
    marker.unlink()

    result = runner.invoke(app, command_args(command, run, tiny_corpus, exported_model, tmp_path))
    assert not marker.exists(), "the file's code ran"
    assert_one_line_error(result, str(target), needle)
    assert not (tmp_path / "m.onnx").exists()


def _garbage_weights(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members["model.weights.h5"] = b"not HDF5 at all"
    _write_keras(path, members=members)


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        (lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]), "truncated zip"),
        (_garbage_weights, "cannot be loaded by Keras"),
        (lambda p: p.write_bytes(b""), "is not a .keras zip archive"),
    ],
)
@pytest.mark.parametrize("command", ["export", "resume"])
def test_a_damaged_keras_file_is_one_line(
    tmp_path, trained_run, tiny_corpus, damage, needle, command
):
    run = copy_run(tmp_path, trained_run)
    target = checkpoint_of(run) if command == "resume" else run / "model.keras"
    damage(target)
    before = contents(run)
    result = runner.invoke(app, command_args(command, run, tiny_corpus, Path(), tmp_path))
    assert_one_line_error(result, str(target), needle)
    assert contents(run) == before


def test_a_stacked_keras_file_with_dropout_passes_the_check(tmp_path):
    dropout = _layer("Dropout", {"rate": 0.2, "noise_shape": None, "seed": None})
    config = _edit(_stack(dropout, _layer("GRU", {"units": 4}), dropout))
    path = _write_keras(tmp_path / "model.keras", config)
    check_keras_file(path, "FIX", units=4, vocab_size=5, layers=2)
    with pytest.raises(RunDirError, match="has a GRU of 8 units, but the run's config.json says 4"):
        check_keras_file(
            _write_keras(tmp_path / "wide.keras", _edit(_stack(_layer("GRU", {"units": 8})))),
            "FIX",
            units=4,
            layers=2,
        )
