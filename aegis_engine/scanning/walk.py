"""Safe tree walking: lstat first, never open what is not a regular file, never loop.

- FIFOs, sockets and devices inside a tree are skipped without being opened.
- Symlinks inside a tree are not followed unless asked (targets given by the user are).
- Directory loops (symlinks, bind mounts) are detected by (device, inode) of the ancestors.
- Permission errors, vanished files and names that are not valid UTF-8 never stop the walk.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from ..own_files import is_decoy
from ..results import Verdict


class FileEntry(NamedTuple):
    """A regular file to scan, with the lstat taken during the walk (a tuple: the walk makes
    one per file, so it must be cheap)."""

    path: str
    st: os.stat_result


@dataclass(frozen=True)
class WalkProblem:
    """Something the user asked to scan that could not be, or could not be fully."""

    path: str
    verdict: Verdict
    message: str


@dataclass(frozen=True)
class Skipped:
    """An entry passed over on purpose (special file, excluded, symlink not followed)."""

    path: str
    reason: str


WalkItem = FileEntry | WalkProblem | Skipped


class SkipGlobs:
    """`--exclude` globs, matched against the full path and the base name (the allowlist of
    the decision engine is `decision.Exclusions`)."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(patterns)

    def __call__(self, path: str) -> bool:
        if not self.patterns:
            return False
        name = os.path.basename(path)
        return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p) for p in self.patterns)


def _special_kind(mode: int) -> str | None:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return None


def _error_message(exc: OSError) -> str:
    return exc.strerror or str(exc)


def walk(
    roots: Iterable[str],
    *,
    exclude: SkipGlobs | None = None,
    follow_symlinks: bool = False,
    one_file_system: bool = False,
) -> Iterator[WalkItem]:
    """Yield every regular file under ``roots`` (files or folders), depth first.

    Memory stays bounded by the depth of the tree times the width of one folder.
    """
    excluded = exclude or SkipGlobs(())
    for root in roots:
        root = os.path.abspath(root)
        if excluded(root):
            yield Skipped(root, "excluded")
            continue
        try:
            st = os.stat(root)  # a target the user names is followed if it is a link
        except FileNotFoundError:
            yield WalkProblem(root, Verdict.ERROR, "no such file or folder")
            continue
        except OSError as exc:
            yield WalkProblem(root, Verdict.ERROR, f"cannot access: {_error_message(exc)}")
            continue
        if stat.S_ISREG(st.st_mode):
            yield FileEntry(root, st)
        elif stat.S_ISDIR(st.st_mode):
            yield from _walk_dir(root, st, excluded, follow_symlinks, one_file_system)
        else:
            kind = _special_kind(st.st_mode) or "special file"
            yield WalkProblem(root, Verdict.INCOMPLETE, f"not scanned: {kind}")


def count_files(
    roots: Iterable[str],
    *,
    stop: Callable[[], bool] = lambda: False,
    limit: int = 2_000_000,
) -> int:
    """How many regular files a scan of ``roots`` would look at (for a progress fraction);
    gives up at ``limit`` or when ``stop()`` says so."""
    total = 0
    for item in walk(roots):
        if isinstance(item, FileEntry):
            total += 1
            if total >= limit or (total % 256 == 0 and stop()):
                break
    return total


def _walk_dir(
    root: str,
    root_st: os.stat_result,
    excluded: SkipGlobs,
    follow_symlinks: bool,
    one_file_system: bool,
) -> Iterator[WalkItem]:
    # Each stack frame: (folder path, its (dev, ino), the ancestors' identities).
    root_id = (root_st.st_dev, root_st.st_ino)
    stack: list[tuple[str, tuple[int, int], frozenset[tuple[int, int]]]] = [
        (root, root_id, frozenset({root_id}))
    ]
    while stack:
        folder, _, ancestors = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except FileNotFoundError:
            continue  # vanished during the walk
        except OSError as exc:
            yield WalkProblem(folder, Verdict.ERROR, f"cannot list folder: {_error_message(exc)}")
            continue
        subdirs: list[tuple[str, tuple[int, int], frozenset[tuple[int, int]]]] = []
        for entry in entries:
            path = entry.path
            if excluded(path):
                yield Skipped(path, "excluded")
                continue
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    if not follow_symlinks:
                        yield Skipped(path, "symlink not followed")
                        continue
                    st = os.stat(path)
            except FileNotFoundError:
                continue  # vanished, or a dangling symlink
            except OSError as exc:
                yield WalkProblem(path, Verdict.ERROR, f"cannot access: {_error_message(exc)}")
                continue
            mode = st.st_mode
            if stat.S_ISREG(mode):
                if is_decoy(path, st.st_size):
                    continue  # the shield's decoy: Aegis's own file, never counted
                yield FileEntry(path, st)
            elif stat.S_ISDIR(mode):
                ident = (st.st_dev, st.st_ino)
                if ident in ancestors:
                    yield Skipped(path, "folder loop (link back to an ancestor)")
                elif one_file_system and st.st_dev != root_st.st_dev:
                    yield Skipped(path, "other file system")
                else:
                    subdirs.append((path, ident, ancestors | {ident}))
            else:
                yield Skipped(path, _special_kind(mode) or "special file")
        stack.extend(reversed(subdirs))
