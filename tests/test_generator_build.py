"""The generator builder (runtime.generator_build) writes, through the exporter's protos, the
very bytes the builder before it wrote: files exported before it keep their generator, and the
loader's derivation of a file's generator is the exporter's."""

from __future__ import annotations

import hashlib

import pytest
from onnx import helper
from onnx_models import make_model

from gru_edge.exporter.generator_graph import add_generator
from gru_edge.exporter.precision import store_float16
from gru_edge.runtime.generator_build import (
    META_GENERATOR,
    VERSION_1,
    VERSION_2,
    VERSION_3,
    VERSION_4,
)

# SHA-256 of the serialized models built by the pre-split exporter/generator_graph.py (main at
# dbd26bc) for the same steps: one-layer (GRU layout kept in the Scan body), a vocabulary that
# is not a multiple of 4, float16 weights (Casts outside the body), and a step whose layout
# cannot be kept (the body keeps the step's own).
EXPECTED = {
    "plain": "41f08cfda842d0e2a9bbd2c527f5838fc94a03e8fef86a5ebfa3dfc0e440a107",
    "v7": "bb67f4f545b76c6c757e8feb3c2b3a1fd25e1013074bc278425134cf19136508",
    "fp16": "51529b3c3474b93c849851a24b3e89dacbb1b2a3e562320436ca3c6b0d198fa0",
    "nolayout": "b99395d344e196a3781c290976836b39a35a30da5e79d4befac102f53e16691a",
}

# The same for version 2 (settings per row), as exports from 2026-12-05 on write it.
EXPECTED_V2 = {
    "plain": "532a8d7c747b8bb7da4a9f8ab36bcddd11e1c9a7acde5994f41a1dbb676023b3",
    "v7": "85adca3369193479b3f62ef1ca4a98af17457e7f938bdda95abea63d49c80328",
    "fp16": "bd88835c8b7ccdf15d365cf1a00c7c823156ae4d78403f0ab320b21cce2f8d7b",
    "nolayout": "b427d22a0412b18b7fdf36a2ca523f3f528af68fd592a7792ccd8289dab0b4a0",
}

# Version 3 (version 2's values from cheaper noise nodes), as exports from 2026-12-05 evening
# on write it.
EXPECTED_V3 = {
    "fp16": "a071b130692c65ed49abe3dc20eb611bcd00c5bb47b8c974ab46c773985e6b8c",
    "nolayout": "67b3531b5a9255dc8f2253cbc7267cff97c86384ffea7757ebd37df13b79f087",
    "plain": "288de3f5db198457836dca9f5c8fe876d417a0975598cc7966fe42a84f3eb908",
    "v7": "118e4585f202f92ea519cfe7859b532cc63d3dbf2457dc6f182d6822047c3f9c",
}

# Version 4 (the step and the body a GRU cell of plain nodes; "nolayout" keeps version 3's), as
# exports from 2026-12-06 on write it.
EXPECTED_V4 = {
    "fp16": "056e0c9f2f317eb22fcb2b69fa37d60711d554678167471d76acf494b923b54c",
    "nolayout": "89b8dc84beeaf0c69ba16ff3e0ba83e46cab609b07bb67ac2d44afb0427c3eb7",
    "plain": "6fb40996fd389936a9cf1ad3ab6def1cc1ce355b40f70b6be9e971af0617b6c2",
    "v7": "14ea4553612398e335a6a72b5ce55c4b3dd1b8fa2550c27e3594c865abfe5574",
}


def _built(case: str, version: str = VERSION_1) -> bytes:
    if case == "v7":
        model = make_model(generator=False, units=8, vocab=list("abcdefg"))
        add_generator(model, 7, 8, version)
    else:
        model = make_model(generator=False, units=16)
        if case == "fp16":
            store_float16(model)
        if case == "nolayout":
            model.graph.node.insert(2, helper.make_node("Identity", ["x"], ["x_copy"]))
        add_generator(model, 70, 16, version)
    if version == VERSION_1:  # files of the first version name no version: the key came later
        kept = [p for p in model.metadata_props if p.key != META_GENERATOR]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
    return model.SerializeToString()


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_the_generator_is_byte_for_byte_the_one_files_were_written_with(case):
    assert hashlib.sha256(_built(case)).hexdigest() == EXPECTED[case]
    assert hashlib.sha256(_built(case, VERSION_2)).hexdigest() == EXPECTED_V2[case]
    assert hashlib.sha256(_built(case, VERSION_3)).hexdigest() == EXPECTED_V3[case]
    assert hashlib.sha256(_built(case, VERSION_4)).hexdigest() == EXPECTED_V4[case]


def test_a_step_that_already_holds_subgraphs_is_refused():
    model = make_model(generator=False, units=8)
    add_generator(model, 70, 8)
    with pytest.raises(ValueError, match="already holds subgraphs"):
        add_generator(model, 70, 8)
