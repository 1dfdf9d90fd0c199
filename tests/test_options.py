"""GenerationOptions: one frozen object, validated in one place, the same as keyword settings."""

from __future__ import annotations

import dataclasses

import pytest

from gru_edge import GenerationOptions
from gru_edge.runtime.errors import UsageError


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"length": -1}, "--length must be a whole number >= 0, got -1"),
        ({"length": True}, "--length must be a whole number >= 0, got True"),
        ({"length": 2.5}, "--length must be a whole number >= 0, got 2.5"),
        ({"mode": "batch"}, "--mode must be 'stateful' or 'window', got 'batch'"),
        ({"unknown": "drop"}, "--unknown must be 'error' or 'skip', got 'drop'"),
        ({"seed": -1}, "--seed must be a whole number >= 0 and below 2**63, got -1"),
        ({"seed": 1 << 63}, "--seed must be a whole number >= 0 and below 2**63"),
        ({"engine": "gpu"}, "--engine must be 'auto', 'graph' or 'host', got 'gpu'"),
        ({"engine": "graph", "mode": "window"}, "--mode window runs on the host loop"),
        ({"temperature": -0.5}, "temperature must be a finite number >= 0"),
        ({"temperature": float("nan")}, "temperature must be a finite number >= 0"),
        ({"top_k": 0}, "top-k must be at least 1, got 0"),
        ({"top_p": 1.5}, "top-p must be in (0, 1], got 1.5"),
    ],
)
def test_bad_values_are_refused_at_construction(changes, message):
    with pytest.raises(UsageError) as caught:
        GenerationOptions(**changes)
    assert message in str(caught.value)
    with pytest.raises(UsageError):
        GenerationOptions().replace(**changes)


def test_length_zero_asks_for_no_characters(gen):
    assert GenerationOptions(length=0).length == 0
    assert gen.generate("The ", 0, seed=1) == ""
    assert gen.start("The ", 0, seed=1).info.prime == "The "
    assert gen.generate_batch(3, "The ", 0, seed=1) == ["", "", ""]
    assert list(gen.stream("The ", 0)) == []


def test_options_are_frozen_and_replace_names_the_unknown_field():
    options = GenerationOptions(length=10, temperature=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.length = 3  # type: ignore[misc]
    assert options.replace(seed=3) == GenerationOptions(length=10, temperature=0.5, seed=3)
    with pytest.raises(UsageError, match="unknown generation option\\(s\\) temprature"):
        options.replace(temprature=0.2)
    assert options.sampling.temperature == 0.5 and options.sampling.top_k is None


def test_an_options_object_and_keywords_give_the_same_text(gen):
    options = GenerationOptions(length=60, temperature=0.8, top_k=10, seed=5)
    by_object = gen.generate("The ", options=options)
    assert by_object == gen.generate("The ", 60, temperature=0.8, top_k=10, seed=5)
    # keywords override the object
    assert gen.generate("The ", options=options.replace(seed=6)) == gen.generate(
        "The ", options=options, seed=6
    )
    assert gen.generate_batch(2, "The ", options=options) == gen.generate_batch(
        2, "The ", 60, temperature=0.8, top_k=10, seed=5
    )


def test_a_misspelt_keyword_is_a_usage_error_not_a_type_error(gen):
    with pytest.raises(UsageError, match="temprature"):
        gen.generate("The ", 10, temprature=0.5)
