"""The contract's step function over an onnxruntime session, fast for one-id steps.

``step(ids [batch, time] int64, state) -> (logits [batch, vocab] float32, state)``.

A generation step feeds one id per row plus the state the previous step returned. Those steps
run through two pre-built IOBindings that swap two state buffers, so nothing is allocated and
the state never leaves the device on CUDA (on CPU this is ~6 us faster than ``session.run``,
a third of the per-character cost). Any other call (the prime, window mode, a state from
elsewhere) is a plain run whose new state is copied into a buffer.

The returned logits array is reused by the next fast step, and the returned state is a token
to pass back (a numpy array on CPU, an OrtValue on CUDA): callers sample from the logits
before stepping again, which is what runtime.generation does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnxruntime as ort

from gru_edge.runtime import checked_run, contract
from gru_edge.runtime.providers import CUDA

_OUTPUTS = [contract.OUTPUT_LOGITS, contract.OUTPUT_STATE]


class OrtStep:
    """A step function for one batch size over one session."""

    def __init__(
        self,
        session: ort.InferenceSession,
        *,
        batch: int,
        state_width: int,  # layers x units: the state's whole width
        vocab_size: int,
        state_device: str | None = None,
    ):
        """``state_device``: where the state buffers live as OrtValues ("cuda", or "cpu" to
        test that path); None = on the GPU when the session runs on CUDA, else numpy arrays."""
        self._session = session
        self._batch = batch
        self._one = (batch, 1)
        self._ids = np.zeros(self._one, dtype=np.int64)
        self._logits = np.zeros((batch, vocab_size), dtype=np.float32)
        if state_device is None and session.get_providers()[:1] == [CUDA]:
            state_device = "cuda"
        if state_device is None:
            self._a: Any = np.zeros((batch, state_width), dtype=np.float32)
            self._b: Any = np.zeros((batch, state_width), dtype=np.float32)
            values = tuple(ort.OrtValue.ortvalue_from_numpy(x) for x in (self._a, self._b))
        else:
            # The state stays on the device between steps; only ids go in and logits come out.
            self._a, self._b = (
                ort.OrtValue.ortvalue_from_shape_and_type(
                    [batch, state_width], np.float32, state_device, 0
                )
                for _ in range(2)
            )
            values = (self._a, self._b)
        self._values = values  # keep the OrtValues (and the memory they wrap) alive
        self._a_to_b = self._binding(values[0], values[1])
        self._b_to_a = self._binding(values[1], values[0])
        self._run = session.run_with_iobinding
        self._vocab, self._width = vocab_size, state_width

    def _binding(self, state_in: ort.OrtValue, state_out: ort.OrtValue) -> ort.IOBinding:
        binding = self._session.io_binding()
        ids, logits = self._ids, self._logits
        binding.bind_input(contract.INPUT_IDS, "cpu", 0, np.int64, list(ids.shape), ids.ctypes.data)
        binding.bind_ortvalue_input(contract.INPUT_STATE, state_in)
        binding.bind_output(
            contract.OUTPUT_LOGITS, "cpu", 0, np.float32, list(logits.shape), logits.ctypes.data
        )
        binding.bind_ortvalue_output(contract.OUTPUT_STATE, state_out)
        return binding

    def __call__(self, ids: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        if ids.shape == self._one and (state is self._a or state is self._b):
            binding, state_out = (
                (self._a_to_b, self._b) if state is self._a else (self._b_to_a, self._a)
            )
            if ids is not self._ids:
                np.copyto(self._ids, ids)
            # The outputs are bound to buffers of the contract's shapes: onnxruntime refuses
            # other shapes, which run_failed reports. run_options=None keeps this call cheap.
            try:
                self._run(binding)
            except checked_run.ONNXRUNTIME_ERRORS as exc:
                raise checked_run.run_failed(exc) from None
            return self._logits, state_out
        return self._plain(ids, state)

    @property
    def ids_buffer(self) -> np.ndarray:
        """The bound ids array: write the next ids here and pass it to skip a copy."""
        return self._ids

    def _plain(self, ids: np.ndarray, state: Any) -> tuple[np.ndarray, Any]:
        if isinstance(state, ort.OrtValue):
            state = state.numpy()
        logits, state_out = checked_run.run(
            self._session,
            _OUTPUTS,
            {
                contract.INPUT_IDS: np.ascontiguousarray(ids, dtype=np.int64),
                contract.INPUT_STATE: np.ascontiguousarray(state, dtype=np.float32),
            },
        )
        rows = ids.shape[0]
        checked_run.check_shape(contract.OUTPUT_LOGITS, logits, (rows, self._vocab), np.float32)
        checked_run.check_shape(contract.OUTPUT_STATE, state_out, (rows, self._width), np.float32)
        if state_out.shape[0] != self._batch:
            return logits, state_out  # another batch size: no buffers to hand out
        if isinstance(self._a, np.ndarray):
            np.copyto(self._a, state_out)
        else:
            self._a.update_inplace(state_out)
        return logits, self._a
