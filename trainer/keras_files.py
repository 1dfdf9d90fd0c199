"""Loading a Keras model file that may have come from elsewhere, without running its code.

A Keras file is a program as much as data: a legacy HDF5 file loads without ``safe_mode`` (a
Lambda layer's bytecode runs), and a config naming a module makes Keras import it. So before Keras
sees a file, gru-edge checks its bytes: only the native ``.keras`` zip that ``gru-edge train``
writes, whose config.json (read here, as JSON) names nothing but the classes that
trainer/model.py builds; then Keras loads a private copy of those bytes with ``safe_mode=True``.
One function serves export, ``train --resume`` and ``bench --run-dir``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from gru_edge.runtime.errors import RunDirError
from gru_edge.trainer.config import MAX_LAYERS
from gru_edge.trainer.rundir import Run
from gru_edge.trainer.tf_env import load_tf

ZIP_MAGIC = b"PK\x03\x04"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
MEMBERS = {"config.json", "model.weights.h5"}  # what Keras needs
ALLOWED_MEMBERS = MEMBERS | {"metadata.json"}
MAX_CONFIG_BYTES = 1 << 20
MODELS = {("keras", "Sequential"), ("tf_keras.src.engine.functional", "Functional")}
LAYERS = {"InputLayer", "GRU", "Dropout", "Dense"}
# Data-only helper objects tf-keras may write inside those layers and their compile config.
NESTED = {
    "keras.initializers": {
        "GlorotUniform",
        "GlorotNormal",
        "Orthogonal",
        "Zeros",
        "Ones",
        "RandomNormal",
        "RandomUniform",
        "TruncatedNormal",
        "VarianceScaling",
        "HeNormal",
        "HeUniform",
        "LecunNormal",
        "LecunUniform",
    },
    "keras.optimizers": {"RMSprop"},
}
# Keys whose string values Keras resolves by name, and the names trainer/model.py uses.
NAMED = {
    "activation": {"tanh", "sigmoid", "softmax", "linear"},
    "recurrent_activation": {"sigmoid", "hard_sigmoid"},
    "loss": {"categorical_crossentropy"},
}
NOT_NAMES = {"optimizer", "metrics", "weighted_metrics", "loss_weights"}
_LAYER_FIELDS = ("module", "class_name", "registered_name")


def load_keras_model(
    path: Path,
    fix: str,
    *,
    compile: bool = False,
    units: int | None = None,
    vocab_size: int | None = None,
    layers: int | None = None,
) -> Any:
    """The model in ``path``, checked (check_keras_file) before Keras reads it, then loaded
    with ``safe_mode=True``; every failure is a one-line RunDirError ending with ``fix``.

    Keras loads a private copy of the very bytes that were checked, so a file swapped in the
    run directory between the check and the load is never read.
    """
    path = Path(path)
    _, keras = load_tf("loading a Keras model")
    with _open(path, fix) as handle, tempfile.TemporaryDirectory(prefix="gru-edge-") as private:
        _check(handle, path, fix, units, vocab_size, layers)
        copy = Path(private) / "model.keras"  # Keras picks its loader by the .keras name
        handle.seek(0)
        with open(copy, "wb") as out:
            shutil.copyfileobj(handle, out)
        try:
            return keras.models.load_model(copy, compile=compile, safe_mode=True)
        except Exception as exc:  # noqa: BLE001 - Keras and h5py raise many types
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise RunDirError(f"{path} cannot be loaded by Keras ({first}); {fix}") from None


def load_best_model(run: Run, fix: str) -> Any:
    """A finished run's best model (model.keras), checked against the run's own config.json
    and vocabulary before Keras reads it; what export and bench load."""
    config = run.info["config"]
    return load_keras_model(
        run.model_path,
        fix,
        units=config["units"],
        vocab_size=len(run.vocab),
        layers=config.get("layers", 1),
    )


def check_keras_file(
    path: Path,
    fix: str,
    *,
    units: int | None = None,
    vocab_size: int | None = None,
    layers: int | None = None,
) -> None:
    """RunDirError unless ``path`` is an intact .keras zip whose config names only what a
    gru-edge model holds; ``units``, ``vocab_size`` and ``layers``, when given, must match its
    GRU and Dense layers. Reads the file as data only: nothing in it can run."""
    path = Path(path)
    with _open(path, fix) as handle:
        _check(handle, path, fix, units, vocab_size, layers)


def _open(path: Path, fix: str) -> BinaryIO:
    if path.suffix != ".keras":
        raise RunDirError(f"{path} is not a .keras file; {fix}")
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise RunDirError(f"{path} is missing; {fix}") from None
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror}; {fix}") from None


def _check(
    handle: BinaryIO,
    path: Path,
    fix: str,
    units: int | None,
    vocab_size: int | None,
    layers: int | None = None,
) -> None:
    """check_keras_file on an open file; messages name ``path``."""
    found = _layer_configs(read_keras_config(handle, path, fix), path, fix)
    grus, dense = found["GRU"], found["Dense"][0]
    if layers is not None and len(grus) != layers:
        raise RunDirError(
            f"{path} has {len(grus)} GRU layer{'s' * (len(grus) != 1)}, but the run's "
            f"config.json says {layers}; {fix}"
        )
    for gru in grus:
        if units is not None and gru.get("units") != units:
            raise RunDirError(
                f"{path} has a GRU of {gru.get('units')} units, but the run's config.json says "
                f"{units}; {fix}"
            )
    if vocab_size is not None and dense.get("units") != vocab_size:
        raise RunDirError(
            f"{path} predicts {dense.get('units')} characters, but the run's vocabulary has "
            f"{vocab_size}; {fix}"
        )


def read_keras_config(handle: BinaryIO, path: Path, fix: str) -> dict[str, Any]:
    """config.json of the .keras zip open as ``handle`` (named ``path`` in messages), after
    checking it is one and is intact."""
    try:
        head = handle.read(8)
    except OSError as exc:
        raise RunDirError(f"cannot read {path}: {exc.strerror}; {fix}") from None
    if head == HDF5_MAGIC:
        raise RunDirError(
            f"{path} is a legacy HDF5 Keras file, not the .keras zip gru-edge writes; an HDF5 "
            f"model can run code when loaded, so gru-edge never loads one; {fix}"
        )
    if not head.startswith(ZIP_MAGIC):
        raise RunDirError(f"{path} is not a .keras zip archive (it starts {head[:4]!r}); {fix}")
    try:
        with zipfile.ZipFile(handle) as archive:
            names = set(archive.namelist())
            if not (MEMBERS.issubset(names) and names.issubset(ALLOWED_MEMBERS)):
                raise RunDirError(
                    f"{path} holds {sorted(names)}, not a gru-edge model's "
                    f"{sorted(ALLOWED_MEMBERS)}; {fix}"
                )
            damaged = archive.testzip()
            if damaged is not None:
                raise RunDirError(f"{path} is damaged ({damaged} fails its CRC check); {fix}")
            if archive.getinfo("config.json").file_size > MAX_CONFIG_BYTES:
                raise RunDirError(f"{path}: its config.json is over 1 MiB; {fix}")
            config = json.loads(archive.read("config.json").decode("utf-8"))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise RunDirError(f"{path} is a damaged or truncated zip ({exc}); {fix}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunDirError(f"{path}: its config.json is not valid JSON ({exc}); {fix}") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path}: its config.json is not a Keras model config; {fix}")
    return config


def _layer_configs(config: dict[str, Any], path: Path, fix: str) -> dict[str, list[dict[str, Any]]]:
    """Check every object the config names; the layers' configs by class, in model order."""

    def refuse(what: str) -> RunDirError:
        return RunDirError(
            f"{path} holds {what}, which a gru-edge model never has (it is 1 to {MAX_LAYERS} "
            f"GRUs, optional Dropout and one Dense layer); gru-edge refuses it rather than let "
            f"Keras run it; {fix}"
        )

    module, name, _ = _key(config)
    if (module, name) not in MODELS:
        raise refuse(f"a {module}.{name} model")
    inner = config.get("config")
    layers = inner.get("layers") if isinstance(inner, dict) else None
    if not isinstance(layers, list) or not all(isinstance(layer, dict) for layer in layers):
        raise refuse("a model config without a list of layers")
    found: dict[str, list[dict[str, Any]]] = {}
    for layer in layers:
        module, name, registered = _key(layer)
        if module != "keras.layers" or name not in LAYERS or registered is not None:
            raise refuse(f"a {module}.{name} layer")
        if not isinstance(layer.get("config"), dict):
            raise refuse(f"a {name} layer without a config")
        found.setdefault(name, []).append(layer["config"])
    if not (1 <= len(found.get("GRU", [])) <= MAX_LAYERS) or len(found.get("Dense", [])) != 1:
        raise refuse(f"layers {[_key(layer)[1] for layer in layers]}")
    # Every other object the config names, wherever it sits.
    rest = [(k, v) for k, v in config.items() if k not in ("module", "class_name", "config")]
    rest += [(k, v) for k, v in inner.items() if k != "layers"]
    rest += [(k, v) for layer in layers for k, v in layer.items() if k not in _LAYER_FIELDS]
    for key, value in rest:
        _check_nested(key, value, refuse)
    return found


def _check_nested(key: str, value: Any, refuse: Callable[[str], RunDirError]) -> None:
    """Walk the config: every object Keras would deserialize must be one we allow."""
    if isinstance(value, list):
        for item in value:
            _check_nested(key, item, refuse)
    elif isinstance(value, dict):
        module, name, registered = _key(value)
        if "class_name" in value and (name not in NESTED.get(module, ()) or registered):
            raise refuse(f"a {module}.{name} object under {key!r}")
        for inner_key, inner in value.items():
            if inner_key not in ("class_name", "module"):
                _check_nested(inner_key, inner, refuse)
    elif (
        isinstance(value, str)
        and (key in NAMED or key in NOT_NAMES)
        and value not in NAMED.get(key, ())
    ):
        raise refuse(f"{key} {value!r}")


def _key(obj: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """An object's module, class name and registered name; anything but a string (or None)
    becomes its repr, so a crafted config cannot make the checks raise."""
    fields = (obj.get("module"), obj.get("class_name"), obj.get("registered_name"))
    return tuple(v if v is None or isinstance(v, str) else repr(v) for v in fields)  # type: ignore[return-value]
