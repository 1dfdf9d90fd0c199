"""Help screens without Typer's artefacts, and what `sample` and `info` say when given the wrong
kind of file: a Keras model or a training run's directory gets the export command, not
protobuf jargon."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from gru_edge.cli import COMMANDS as REGISTERED
from gru_edge.cli import app

runner = CliRunner()
COMMANDS = sorted(REGISTERED)  # every command, new ones included
EXPORT = "gru-edge export RUN_DIR --out model.onnx"


def _help(args: list[str], columns: int) -> str:
    env = {"COLUMNS": str(columns)}
    result = runner.invoke(app, [*args, "--help"], env=env, prog_name="gru-edge")
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_has_no_artefacts(command, columns):
    shown = _help([command] if command else [], columns)
    usage = next(line for line in shown.splitlines() if "Usage:" in line)
    assert "{" not in usage and not re.search(r"\b[a-z_]+\.\.\.", usage), usage
    for artefact in ("<bool>", "…", "[default: (", "(needs )", "list[", "<list"):
        assert artefact not in shown, f"{artefact!r} in `gru-edge {command} --help`:\n{shown}"


@pytest.mark.parametrize(
    ("command", "usage"),
    [
        ("sample", "gru-edge sample [OPTIONS] MODEL"),
        ("info", "gru-edge info [OPTIONS] MODEL"),
        ("bench", "gru-edge bench [OPTIONS] MODEL..."),
        ("train", "gru-edge train [OPTIONS] CORPUS"),
        ("export", "gru-edge export [OPTIONS] RUN_DIR"),
        ("web", "gru-edge web [OPTIONS] MODEL"),
    ],
)
def test_usage_names_the_arguments_as_the_help_does(command, usage):
    assert usage in _help([command], 120)


def test_brackets_in_a_help_text_are_shown():
    assert "(needs [train])" in " ".join(_help(["bench"], 120).split())


def test_defaults_that_are_words_read_plainly():
    shown = " ".join(_help(["sample"], 120).split())
    assert "[default: drawn, shown by --verbose]" in shown
    assert "[default: 1.0]" in shown
    assert "[default: 100]" in " ".join(_help(["train"], 120).split())


def test_diversity_is_a_hidden_name_of_temperature(small_model):
    shown = _help(["sample"], 120)
    assert ",--diversity" not in shown  # not beside --temperature in the names column
    assert not re.search(r"^│ --diversity", shown, re.MULTILINE)  # no row of its own
    assert "--diversity" in shown  # named in --temperature's help
    args = ["sample", str(small_model), "--seed", "2", "--length", "30"]
    by_temperature = runner.invoke(app, [*args, "-t", "0.3"])
    by_diversity = runner.invoke(app, [*args, "--diversity", "0.3"])
    assert by_temperature.exit_code == by_diversity.exit_code == 0
    assert by_temperature.stdout == by_diversity.stdout
    both = runner.invoke(app, [*args, "-t", "0.3", "--diversity", "0.3"])
    assert both.exit_code == 2
    assert both.stderr == (
        "Error: --diversity is --temperature under another name; give one of them\n"
    )


# --- the wrong kind of file ---------------------------------------------------------------------


def _run_dir(folder):
    run = folder / "runs" / "poems"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"format": "gru-edge-run/1"}')
    (run / "model.keras").write_bytes(b"PK\x03\x04" + bytes(40))
    return run


@pytest.mark.parametrize("command", ["sample", "info"])
@pytest.mark.parametrize(
    ("name", "data", "kind"),
    [
        ("model.keras", b"PK\x03\x04" + bytes(40), "a zip archive"),
        ("model.h5", b"\x89HDF\r\n\x1a\n" + bytes(40), "an HDF5 file"),
    ],
)
def test_a_keras_file_gets_the_export_command(tmp_path, command, name, data, kind):
    path = tmp_path / name
    path.write_bytes(data)
    result = runner.invoke(app, [command, str(path)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: {path} is a Keras model ({kind}), not an ONNX model; export its run directory "
        f"to one: {EXPORT}\n"
    )


def test_a_run_directory_given_to_sample_gets_the_export_command(tmp_path):
    run = _run_dir(tmp_path)
    result = runner.invoke(app, ["sample", str(run)])
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr == (
        f"Error: {run} is a training run directory, not a model file; export it first: "
        f"gru-edge export {run} --out model.onnx\n"
    )
    keras = runner.invoke(app, ["sample", str(run / "model.keras")])
    assert keras.exit_code == 1 and EXPORT in keras.stderr


def test_another_directory_is_still_just_a_directory(tmp_path):
    result = runner.invoke(app, ["sample", str(tmp_path)])
    assert result.exit_code == 1
    assert result.stderr == f"Error: {tmp_path} is a directory; pass the .onnx file inside it\n"


def test_bare_gru_edge_shows_the_help_once():
    result = runner.invoke(app, [], prog_name="gru-edge")
    assert result.exit_code == 2
    assert result.stdout.count("Usage: gru-edge") == 1 and "sample" in result.stdout
