"""The CLI's `Error: ...` line stays one line whatever it quotes: a path or value with a newline,
an escape sequence or a bidi override is printed escaped, as repr() writes it, for every
command (gru_edge/cli_common.py prints every library error, cli.py the parser's)."""

from __future__ import annotations

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.cli_common import one_line

runner = CliRunner()
ODD = "no\nsuch\x1b[2J\u202e.txt"


@pytest.mark.parametrize(
    "args",
    [
        ["train", ODD, "--out", "run"],
        ["export", ODD, "--out", "m.onnx"],
        ["sample", ODD],
        ["info", ODD],
        ["bench", ODD],
        ["web", ODD, "--out", "site"],
        ["sample", "m.onnx", "--engine", ODD],  # a parser error quoting the value
    ],
)
def test_an_error_quoting_a_control_character_stays_one_line(tmp_path, monkeypatch, args):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    line = assert_one_line_error(result)
    assert "no\\nsuch\\x1b[2J\\u202e.txt" in line, line
    assert "\x1b" not in result.stderr and "\u202e" not in result.stderr


def test_one_line_escapes_only_control_characters():
    assert one_line("café 中\tb\r\nc\x00\u2028") == "café 中\\tb\\r\\nc\\x00\\u2028"
