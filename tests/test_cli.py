"""What the option parser rejects gets the same one-line error as the library's errors."""

from __future__ import annotations

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["train", "c.txt", "--out", "r", "--units", "abc"], ["Invalid value for '--units'"]),
        (["train", "c.txt", "--out", "r", "--lr", "fast"], ["Invalid value for '--lr'"]),
        (["train", "c.txt"], ["Missing option '--out'", "train --help"]),
        (["train"], ["Missing argument 'CORPUS'"]),
        (["sample"], ["Missing argument 'MODEL'", "sample --help"]),
        (["sample", "m.onnx", "--length"], ["Option '--length' requires an argument"]),
        (["sample", "m.onnx", "--threads", "two"], ["Invalid value for '--threads'"]),
        (["export", "run", "--out", "m.onnx", "--atol", "tiny"], ["Invalid value for '--atol'"]),
        (["frobnicate"], ["No such command 'frobnicate'"]),
    ],
)
def test_parser_errors_are_one_line(args, needles):
    result = runner.invoke(app, args)
    assert_one_line_error(result, *needles)
    assert result.exit_code == 2


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["train", "--help"],
        ["sample", "--help"],
        ["export", "--help"],
        ["info", "--help"],
        ["bench", "--help"],
    ],
)
def test_help_exits_zero(args):
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Usage: " in result.stdout
