"""Stop strings (runtime.stops, `sample --stop`): the text ends before the first one, which is
not returned, wherever the pieces split it."""

from __future__ import annotations

import json

import pytest
from cli_checks import assert_one_line_error
from typer.testing import CliRunner

from gru_edge.cli import app
from gru_edge.runtime.errors import UsageError
from gru_edge.runtime.options import GenerationOptions
from gru_edge.runtime.stops import StopFilter, check_stops, cut_at_stop

runner = CliRunner()


@pytest.mark.parametrize(
    "text, stops, expected, stopped",
    [
        ("hello world", ["o w"], "hell", True),
        ("hello world", ["xyz"], "hello world", False),
        ("hello world", ["world", "lo"], "hel", True),  # the earliest occurrence wins
        ("hello world", ["l", "ll"], "he", True),
        ("aaa", ["aa"], "", True),
        ("", ["a"], "", False),
    ],
)
def test_the_filter_cuts_at_the_first_stop_for_any_split(text, stops, expected, stopped):
    assert cut_at_stop(text, stops) == (expected, stopped)
    for size in (1, 2, 3, 100):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        cut = StopFilter(stops)
        assert "".join(cut.pieces(pieces)) == expected and cut.stopped == stopped


def test_the_filter_stops_pulling_at_the_stop():
    pulled = []

    def pieces():
        for char in "abcXYdefgh":
            pulled.append(char)
            yield char

    assert "".join(StopFilter(["XY"]).pieces(pieces())) == "abc"
    assert "".join(pulled) == "abcXY"


@pytest.mark.parametrize("stops", [[""], ["a" * 257], [3]])
def test_bad_stops_are_usage_errors(stops):
    with pytest.raises(UsageError, match="--stop"):
        check_stops(stops)


def test_stops_are_normalised_like_the_prime():
    assert check_stops(["e\u0301\r\n"]) == ("é\n",)
    assert GenerationOptions(stop=["x"]).stop == ("x",)


def test_generate_stream_and_batch_cut_at_the_stop(gen):
    text = gen.generate("The ", 400, seed=3)
    stop = text[100:103]
    expected = text[: text.index(stop)]
    assert gen.generate("The ", 400, seed=3, stop=(stop,)) == expected
    run = gen.start("The ", 400, seed=3, stop=(stop,))
    assert "".join(run.pieces) == expected and run.stopped
    for engine in ("graph", "host"):
        assert "".join(gen.stream("The ", 400, seed=3, stop=(stop,), engine=engine)) == expected
    rows = gen.generate_batch(3, "The ", 400, seed=3)
    cut = gen.generate_batch(3, "The ", 400, seed=3, stop=(stop,))
    assert cut == [cut_at_stop(row, [stop])[0] for row in rows]


def test_sample_stop_in_text_and_json(small_model, gen):
    text = gen.generate("The ", 300, seed=5)
    stops = [text[50:52], text[120:123]]
    expected = text[: text.index(stops[0])]
    args = [str(small_model), "--prime", "The ", "-l", "300", "--seed", "5"]
    for stop_args in (["--stop", stops[0]], ["--stop", stops[1], "--stop", stops[0]]):
        result = runner.invoke(app, ["sample", *args, *stop_args])
        assert result.exit_code == 0 and result.stdout == f"The {expected}\n"
    data = json.loads(runner.invoke(app, ["sample", *args, "--stop", stops[0], "--json"]).stdout)
    assert data["texts"] == [expected] and data["settings"]["stop"] == [stops[0]]
    batch = runner.invoke(app, ["sample", *args, "-n", "2", "--stop", stops[0]]).stdout
    rows = gen.generate_batch(2, "The ", 300, seed=5, stop=(stops[0],))
    assert batch == "".join(f"----- sample {i}/2\nThe {t}\n" for i, t in enumerate(rows, 1))


def test_sample_refuses_an_empty_stop(small_model):
    result = runner.invoke(app, ["sample", str(small_model), "--stop", ""])
    assert_one_line_error(result, "--stop must be a non-empty string")
