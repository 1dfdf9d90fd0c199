"""The default thread count (runtime.threads): one for a stream; for a large batch, the cores
that other work leaves idle; and every count writes the same text."""

from __future__ import annotations

import os

import pytest
from onnx_models import write_model

from gru_edge.runtime import threads
from gru_edge.runtime.generator import Generator


def _loadavg(tmp_path, monkeypatch, running: int, own: int = 1) -> None:
    path = tmp_path / "loadavg"
    path.write_text(f"0.50 0.40 0.30 {running}/120 4242\n")
    monkeypatch.setattr(threads, "_LOADAVG", path)
    monkeypatch.setattr(threads, "_own_running", lambda: own)


@pytest.mark.parametrize(
    "running, own, idle",
    [(1, 1, "all"), (3, 1, "all - 2"), (4, 3, "all - 1"), (500, 1, "none")],
)
def test_idle_cores_count_other_processes_runnable_tasks(tmp_path, monkeypatch, running, own, idle):
    _loadavg(tmp_path, monkeypatch, running, own)
    cores = os.cpu_count() or 1
    want = {"all": cores, "all - 2": cores - 2, "all - 1": cores - 1, "none": 0}[idle]
    assert threads.idle_cores() == max(0, want)


def test_unreadable_counts_mean_one_thread(tmp_path, monkeypatch):
    monkeypatch.setattr(threads, "_LOADAVG", tmp_path / "missing")
    assert threads.idle_cores() is None and threads.threads_for(256) == 1
    (tmp_path / "missing").write_text("garbage\n")
    assert threads.idle_cores() is None


def test_a_stream_and_a_small_batch_take_one_thread(tmp_path, monkeypatch):
    _loadavg(tmp_path, monkeypatch, running=1)
    assert threads.threads_for(1) == threads.threads_for(threads.WIDE_BATCH - 1) == 1
    assert threads.threads_for(threads.WIDE_BATCH) == max(1, os.cpu_count() or 1)


def test_own_running_counts_this_thread_on_linux():
    if not threads._TASKS.exists():
        pytest.skip("no /proc/self/task here")  # not Linux
    assert threads._own_running() >= 1


def test_a_wide_batch_gets_a_session_with_more_threads_and_the_same_text(tmp_path, monkeypatch):
    path = write_model(tmp_path / "m.onnx", units=16, seed=4)
    monkeypatch.setattr("gru_edge.runtime.generator.threads_for", lambda batch: 2)
    chosen = Generator.load(path, device="cpu")
    asked = Generator.load(path, device="cpu", threads=1)
    for engine in ("graph", "host"):
        wide = chosen.generate_batch(64, "ab", 150, seed=3, engine=engine)
        assert wide == asked.generate_batch(64, "ab", 150, seed=3, engine=engine)
    assert list(chosen._wide) == [2] and asked._wide == {}
    # A stream keeps the model's own session.
    assert chosen._session(1) is chosen.model.session
    assert chosen._session(64) is chosen._wide[2]
