"""What `gru-edge info` shows about a model file, as a dict (for --json) and as text."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from gru_edge.runtime import contract
from gru_edge.runtime.loader import LoadedModel


def show_char(char: str) -> str:
    """A character as Python's repr: control and invisible characters escaped ('\\n',
    '\\xa0'), printable ones as themselves ('é', '🙂'), quoted so a space is visible."""
    return repr(char)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """``text`` with its control characters escaped ('\\x1b'), so that a value from a file
    from elsewhere cannot break the layout or drive the terminal it is printed to."""
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def ordered_metadata(metadata: dict[str, str]) -> dict[str, str]:
    """Metadata in contract.METADATA_KEYS order, unknown keys after (sorted); no vocabulary."""
    known = [k for k in contract.METADATA_KEYS if k in metadata]
    extra = sorted(k for k in metadata if k not in contract.METADATA_KEYS)
    return {k: metadata[k] for k in (*known, *extra) if k != contract.META_VOCABULARY}


def model_info(model: LoadedModel, available: Sequence[str]) -> dict[str, Any]:
    """Everything `info` reports, JSON-ready."""
    return {
        "path": str(model.path),
        "file_size": model.file_size,
        "metadata": ordered_metadata(model.metadata),
        "vocabulary": list(model.vocab),
        "inputs": [_tensor(s) for s in model.inputs],
        "outputs": [_tensor(s) for s in model.outputs],
        "opset": model.opset,
        "ir_version": model.ir_version,
        "producer": model.producer,
        "generator": model.has_generator,
        "providers": {"available": list(available), "session": list(model.providers)},
        "warnings": list(model.warnings),
    }


def format_info(info: dict[str, Any], width: int = 100) -> str:
    """The text form of ``model_info``: aligned ``key  value`` lines."""
    rows: list[tuple[str, str]] = [("file", f"{info['path']} ({info['file_size']:,} bytes)")]
    rows += [(plain(key), plain(value)) for key, value in info["metadata"].items()]
    onnx = f"opset {info['opset'] if info['opset'] is not None else '?'}"
    if info["ir_version"] is not None:
        onnx += f", IR version {info['ir_version']}"
    if info["producer"]:
        onnx += f", made by {plain(info['producer'])}"
    rows.append(("onnx", onnx))
    rows += [("input", _describe(t)) for t in info["inputs"]]
    rows.append(
        (
            "generator",
            "in the file (gru-edge/2): `sample` runs it, many characters per call"
            + (
                "; settings per row (version 2 on): `serve` batches with it"
                if info["metadata"].get("generator", "1") != "1"
                else ""
            )
            if info["generator"]
            else "none (gru-edge/1): `sample` runs the host loop",
        )
    )
    rows += [("output", _describe(t)) for t in info["outputs"]]
    rows.append(("providers offered", ", ".join(info["providers"]["available"])))
    rows.append(("session uses", info["providers"]["session"][0]))
    rows.append(("vocabulary", f"{len(info['vocabulary'])} characters:"))
    key_width = max(len(k) for k, _ in rows) + 2
    lines = [f"{k:<{key_width}}{v}" for k, v in rows]
    lines += _wrap([show_char(c) for c in info["vocabulary"]], width, " " * key_width)
    lines += [f"warning: {w}" for w in info["warnings"]]
    return "\n".join(lines)


def _wrap(tokens: list[str], width: int, indent: str) -> list[str]:
    # Not textwrap: a token may hold a space ("' '") and must not be split.
    lines, line = [], ""
    for token in tokens:
        if line and len(indent) + len(line) + 1 + len(token) > width:
            lines.append(indent + line)
            line = token
        else:
            line = f"{line} {token}" if line else token
    if line:
        lines.append(indent + line)
    return lines


def _tensor(spec: Any) -> dict[str, Any]:
    return {"name": spec.name, "dtype": spec.dtype, "shape": list(spec.shape or [])}


def _describe(tensor: dict[str, Any]) -> str:
    dims = ", ".join("?" if d is None else str(d) for d in tensor["shape"])
    return f"{tensor['name']} {tensor['dtype']} [{dims}]"
