"""Atomic writes: the temporary file, the rename, symlinks written through, permissions kept,
and the destinations check_output refuses."""

from __future__ import annotations

import os
import stat

import pytest

from gru_edge.runtime.errors import UsageError
from gru_edge.runtime.files import atomic_path, atomic_write, check_output, not_a_file


@pytest.mark.parametrize(
    "mode, kind",
    [
        (stat.S_IFREG | 0o644, None),
        (stat.S_IFDIR | 0o755, "a directory"),
        (stat.S_IFIFO | 0o644, "a FIFO (named pipe)"),
        (stat.S_IFCHR | 0o666, "a character device"),
        (stat.S_IFBLK | 0o660, "a block device"),
        (stat.S_IFSOCK | 0o777, "a socket"),
    ],
)
def test_what_is_not_a_regular_file(mode, kind):
    assert not_a_file(mode) == kind


def test_check_output_returns_the_file_a_write_replaces(tmp_path):
    target = tmp_path / "real.txt"
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert check_output(link, "--output") == target  # it need not exist yet
    assert check_output(tmp_path / "new.txt", "--output") == tmp_path / "new.txt"
    with pytest.raises(UsageError, match=r"^--x .* is a directory; pass the path of a regular"):
        check_output(tmp_path, "--x")


def test_atomic_write_replaces_a_symlinks_target_and_keeps_its_permissions(tmp_path):
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    target = folder / "data.txt"
    target.write_text("old", encoding="utf-8")
    target.chmod(0o600)
    link = tmp_path / "data.txt"
    link.symlink_to(target)
    atomic_write(link, "new")
    assert link.is_symlink() and target.read_text(encoding="utf-8") == "new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in folder.iterdir()) == ["data.txt"]


def test_a_new_file_gets_the_permissions_open_would_give(tmp_path):
    umask = os.umask(0o027)
    try:
        atomic_write(tmp_path / "fresh.txt", b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "fresh.txt").stat().st_mode) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("precious", encoding="utf-8")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half", encoding="utf-8")
        raise RuntimeError("crash mid-write")
    assert target.read_text(encoding="utf-8") == "precious"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
