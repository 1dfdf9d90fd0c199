"""Which onnxruntime execution providers to ask for, and whether the session got them.

Pure functions over provider-name lists, so they are tested without a GPU. onnxruntime falls
back to CPU with only a log line when CUDA cannot load, so the session's actual providers are
checked after it is created.
"""

from __future__ import annotations

from collections.abc import Sequence

from gru_edge.runtime.errors import DeviceError, UsageError

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"

_INSTALL_GPU = (
    "install onnxruntime's CUDA build instead of the CPU one "
    "(pip uninstall onnxruntime && pip install 'gru-edge[gpu]') "
    "plus the CUDA and cuDNN libraries it was built for, or use --device cpu"
)


def resolve_providers(device: str, available: Sequence[str]) -> list[str]:
    """The providers to request, best first: "auto" takes CUDA when offered, else CPU."""
    if device not in DEVICES:
        raise UsageError(f"device must be one of {', '.join(DEVICES)}, got {device!r}")
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        # CPU stays listed so ops CUDA lacks still run.
        return [CUDA, CPU]
    if device == "cuda":
        offered = ", ".join(available) or "none"
        raise DeviceError(
            f"--device cuda, but this onnxruntime offers only {offered}; {_INSTALL_GPU}"
        )
    return [CPU]


def check_session_providers(
    device: str, requested: Sequence[str], actual: Sequence[str]
) -> str | None:
    """Compare what a session got with what was asked; return a warning or raise DeviceError.

    Under "cuda" a silent fallback to CPU is an error; under "auto" it is a warning.
    """
    if CUDA not in requested or CUDA in actual:
        return None
    message = (
        "onnxruntime offers CUDAExecutionProvider but could not start it "
        f"(session runs on {', '.join(actual) or 'nothing'})"
    )
    if device == "cuda":
        raise DeviceError(
            f"{message}; the CUDA or cuDNN libraries are missing or do not match: {_INSTALL_GPU}"
        )
    return f"{message}; using the CPU (check the CUDA and cuDNN libraries)"


def main_provider(actual: Sequence[str]) -> str:
    """The provider that runs the model: the session's first, or CPU if it reports none."""
    return actual[0] if actual else CPU
