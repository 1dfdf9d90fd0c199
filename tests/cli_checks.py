"""The checks every bad-input test makes: of a CLI result, and of a file the loader refuses."""

from __future__ import annotations


def assert_one_line_error(result, *needles: str) -> str:
    """Non-zero exit, no traceback, exactly one stderr line 'Error: ...' holding every needle."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def assert_load_refused(path, *needles: str) -> str:
    """runtime.loader refuses ``path`` with one line naming the file and holding every needle."""
    import pytest

    from gru_edge.runtime.errors import ModelFileError
    from gru_edge.runtime.loader import load_model

    with pytest.raises(ModelFileError) as info:
        load_model(path, device="cpu")
    message = str(info.value)
    assert "\n" not in message and str(path) in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message
