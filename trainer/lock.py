"""The run directory's lock: one training writes a run at a time, and readers see it is busy.

An OS lock (``flock``) on ``train.lock`` inside the run directory, held for the whole training:
the kernel drops it when the process ends, however it ends, so a crash never leaves a run locked.
The file holds the holder's pid, host and start time for the message the next caller sees. On
systems without ``fcntl`` (Windows) runs are not locked.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from gru_edge.runtime.errors import RunDirError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK = "train.lock"


@contextlib.contextmanager
def training_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the block; RunDirError naming the holder if it is taken."""
    if fcntl is None:  # pragma: no cover - Windows
        yield
        return
    path = Path(run_dir) / LOCK
    fd = _acquire(path)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder()).encode("utf-8") + b"\n")
        yield
    finally:
        # Unlinked while still held: a process that opened the old file sees, after locking it,
        # that the path no longer names it and opens afresh (see _acquire).
        path.unlink(missing_ok=True)
        os.close(fd)


def check_not_training(run_dir: Path, what: str) -> None:
    """RunDirError if a training holds ``run_dir``'s lock; ``what`` says what to do then."""
    path = Path(run_dir) / LOCK
    if fcntl is None or not path.exists():
        return
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:  # the training ended meanwhile
        return
    except OSError as exc:
        raise RunDirError(f"cannot read the lock {path}: {exc.strerror}; {what}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        raise RunDirError(
            f"{run_dir} is being written by gru-edge train ({describe_holder(path)}); {what}"
        ) from None
    finally:
        os.close(fd)  # closing drops the shared lock, if it was taken


def describe_holder(path: Path) -> str:
    """'pid N on HOST since TIME' from a lock file, or why it cannot say."""
    try:
        holder = json.loads(Path(path).read_text(encoding="utf-8"))
        return f"pid {holder['pid']} on {holder['host']} since {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "holder unknown"


def _acquire(path: Path) -> int:
    """An fd of ``path`` holding its exclusive lock."""
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise RunDirError(
                f"cannot create the lock {path}: {exc.strerror}; check the folder's permissions"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise RunDirError(
                f"{path.parent} is being written by another gru-edge train "
                f"({describe_holder(path)}); wait for it to end, or stop it"
            ) from None
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                return fd
        except FileNotFoundError:
            pass
        # The previous holder unlinked the file between our open and our lock: try again.
        os.close(fd)


def _holder() -> dict[str, object]:
    started = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": started}
