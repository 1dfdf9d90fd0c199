"""Atomic file writes: a temporary file in the same folder, fsynced, then renamed into place.

A crash mid-write leaves the previous file intact, never a half-written one. A symlink is
written through: the file it points to is replaced (atomically, in that file's folder) and the
link stays, as a plain ``open(path, "w")`` would do. ``check_output`` refuses, before any work,
a destination that is not a regular file: renaming onto a FIFO or a device would silently
replace it with a file, and a directory cannot be replaced. ``signals_raise`` makes SIGTERM and
SIGHUP unwind the stack like Ctrl-C, so a long write's temporary file is removed then too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from gru_edge.runtime.errors import UsageError

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def not_a_file(mode: int) -> str | None:
    """What a ``st_mode`` is if not a regular file ("a FIFO (named pipe)", ...), else None."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def write_target(path: Path) -> Path:
    """The file that writing ``path`` replaces: ``path``, or where its symlinks lead."""
    return Path(os.path.realpath(path))


def check_output(path: Path, what: str) -> Path:
    """Raise UsageError unless ``path`` can be written atomically: its target (symlinks
    followed) must be a regular file or not exist yet, in a folder that exists. Returns the
    target. ``what`` names the path in the message, e.g. "--output"."""
    target = write_target(path)
    via = f" (a symlink to {target})" if target != Path(os.path.abspath(path)) else ""
    try:
        mode = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise UsageError(f"cannot use {what} {path}{via}: {exc.strerror}") from None
    kind = None if mode is None else not_a_file(mode)
    if kind:
        raise UsageError(
            f"{what} {path}{via} is {kind}; pass the path of a regular file "
            "(or leave it out and redirect stdout)"
        )
    if not target.parent.is_dir():
        raise UsageError(
            f"{what} {path}{via} is in a folder that does not exist; "
            "pass a file path in an existing folder"
        )
    return target


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``'s target; rename it onto the target if the block
    succeeds. The new file keeps the permissions of the one it replaces."""
    import tempfile  # here: `sample` without --output starts ~1 ms sooner without it

    target = write_target(path)
    # Keep the suffix: some writers (Keras' model.save) pick the format from it.
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        mode = stat.S_IMODE(target.stat().st_mode)
    except OSError:
        # mkstemp creates 0600 files; give a new file the permissions a plain open() would.
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    try:
        os.chmod(tmp, mode)
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write bytes or UTF-8 text to ``path`` atomically."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as tmp:
        tmp.write_bytes(payload)


# What ends a process politely besides Ctrl-C: kill's default, and a closed terminal.
ENDING_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


@contextlib.contextmanager
def signals_raise(make_error: Callable[[int], BaseException]) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGHUP raise ``make_error(signum)`` in the main thread
    instead of ending the process on the spot, so the stack unwinds and every temporary file or
    folder of the block is removed, as for Ctrl-C. A signal is handled between two Python steps
    (a generator call, a server poll). Elsewhere than the main thread (a library caller's
    worker) signals cannot be handled, and the block runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        for number in ENDING_SIGNALS:  # a second signal must not cut the clean-up short
            signal.signal(number, signal.SIG_IGN)
        raise make_error(signum)

    previous = {number: signal.signal(number, stop) for number in ENDING_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
