"""files_changed_since: what real-time protection missed during a pause."""

from __future__ import annotations

import os
from pathlib import Path

from aegis_engine.scanning.changed import files_changed_since


def test_only_files_changed_since_the_moment_are_listed(tmp_path: Path) -> None:
    old = tmp_path / "old.txt"
    old.write_text("old")
    since = os.stat(old).st_ctime + 1  # a moment after the old file's last change
    new = tmp_path / "sub" / "new.txt"
    new.parent.mkdir()
    new.write_text("new")
    os.utime(new, (since + 5, since + 5))
    os.symlink(old, tmp_path / "link-to-old")
    os.mkfifo(tmp_path / "fifo")
    found = files_changed_since([str(tmp_path)], since)
    assert found.paths == [str(new)]
    assert not found.truncated
    everything = files_changed_since([str(tmp_path)], 0)
    assert sorted(everything.paths) == sorted([str(old), str(new)])  # no link, no FIFO


def test_too_many_changes_say_so(tmp_path: Path) -> None:
    for i in range(5):
        (tmp_path / f"f{i}").write_text(str(i))
    found = files_changed_since([str(tmp_path)], 0, limit=3)
    assert found.truncated and len(found.paths) == 3


def test_a_missing_folder_is_no_error(tmp_path: Path) -> None:
    assert files_changed_since([str(tmp_path / "gone")], 0).paths == []
