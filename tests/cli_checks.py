"""The check every bad-input test makes of a CLI result."""

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
