"""Helpers shared by the run-directory safety tests: copies of a run, the commands that read
one, and another process holding a run's lock."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

OUR_FILES = ("config.json", "vocab.json", "history.csv", "samples.txt", "state.json")


def contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def write_corpus(tmp_path: Path) -> Path:
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 120, encoding="utf-8")
    return corpus


def copy_run(tmp_path: Path, trained_run: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    return run


def checkpoint_of(run: Path) -> Path:
    return run / json.loads((run / "state.json").read_text(encoding="utf-8"))["checkpoint"]


def command_args(command: str, run: Path, corpus: Path, onnx: Path, tmp_path: Path) -> list[str]:
    return {
        "export": ["export", str(run), "--out", str(tmp_path / "m.onnx")],
        "resume": ["train", str(corpus), "--out", str(run), "--resume", "--epochs", "5"],
        "bench": ["bench", str(onnx), "--run-dir", str(run), "--repeats", "1"],
    }[command]


HOLD = (
    "import sys, time\n"
    "from gru_edge.trainer.lock import training_lock\n"
    "with training_lock(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(300)\n"
)


class LockHolder:
    """Another process holding a run directory's lock, as a training does."""

    def __init__(self, run_dir: Path, cwd: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-c", HOLD, str(run_dir)], stdout=subprocess.PIPE, cwd=cwd, text=True
        )
        assert self.proc.stdout.readline().strip() == "locked"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)  # no cleanup runs: the OS drops the lock
        self.proc.wait(timeout=30)
        self.proc.stdout.close()

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.kill()
