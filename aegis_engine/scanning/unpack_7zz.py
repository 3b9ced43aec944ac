"""Formats read by the 7-Zip command-line program (Debian package ``7zip``: ``7zz``), run as
a child process: ARJ, CHM, SZDD (MS ``compress.exe``), NSIS installers and the zip methods
the stdlib lacks (implode).

The child gets a fixed argument list (no shell, the container is a private temp copy with a
random name, ``--`` before it), a private empty output folder, ``-p-`` (never asks for a
password), no standard input, a wall-clock limit (what is left of max-scan-time, at most
:data:`TOOL_TIMEOUT`) and, through util-linux ``prlimit``, a cap on each written file
(max-file-size) and on its address space. The listing is read first: a container whose
declared member count or size is over the budget is refused before anything is written. The
extracted files are then read back (regular files only, never following links) and charged
to the budget like any other member; the folder is removed when the iterator closes.

Without ``7zz`` these formats are reported as ``cannot open`` (the target is incomplete).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..detectors.base import Buffer
from ..errors import ContainerError, LimitExceeded
from .budget import ExtractionBudget, Member
from .unpack_io import CHUNK, MemberSink, member_label

TOOL_TIMEOUT = 60.0
"""Longest one 7zz run may take (seconds), whatever max-scan-time leaves."""
TOOL_ADDRESS_SPACE = 2 * 1024 * 1024 * 1024
"""Address-space cap of the child (bytes); 7zz needs far less for these formats."""
_NAMES = ("7zz", "7z")


def tool_path() -> str | None:
    """The 7-Zip program, or None when it is not installed."""
    for name in _NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def prlimit_args(
    budget: ExtractionBudget,
    address_space: int = TOOL_ADDRESS_SPACE,
    cpu_seconds: float = TOOL_TIMEOUT,
) -> list[str]:
    """util-linux prlimit caps for a helper: address space, CPU time (a backstop should the
    worker that waits for it be killed), no core, each written file's size."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return []
    fsize = budget.limits.max_file_size or 0
    cpu = int(cpu_seconds) + 5
    args = [prlimit, f"--as={address_space}", f"--cpu={cpu}", "--core=0"]
    if fsize:
        args.append(f"--fsize={fsize + 1}")
    return [*args, "--"]


def _timeout(budget: ExtractionBudget, cap: float) -> float:
    left = budget.time_left()
    if left is None:
        return cap
    if left <= 0:
        budget.check_time()
    return max(1.0, min(cap, left))


def run_tool(
    args: list[str], cwd: str, budget: ExtractionBudget, what: str, timeout: float = TOOL_TIMEOUT
) -> str:
    """Run a helper program (fixed arguments, no shell, no input, a bare environment) within
    what is left of max-scan-time; its standard output. Exit codes 0 and 1 are success."""
    timeout = _timeout(budget, timeout)
    try:
        done = subprocess.run(
            args,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise LimitExceeded("max-scan-time", f"{what} took longer than {timeout:g} s") from exc
    except OSError as exc:
        raise ContainerError(
            f"{what}: cannot run {os.path.basename(args[0])} ({exc.strerror or exc})"
        ) from exc
    out = done.stdout.decode("utf-8", "replace")
    if done.returncode < 0:
        raise LimitExceeded("max-file-size", f"{what}: helper stopped by signal {-done.returncode}")
    if done.returncode not in (0, 1):  # 1: warnings (e.g. data after the end)
        err = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
        last = next((line for line in reversed(err) if line.strip()), "error")
        raise ContainerError(f"{what}: helper exit {done.returncode}: {last.strip()[:200]}")
    return out


def _check_listing(listing: str, budget: ExtractionBudget, what: str) -> None:
    """Refuse before extracting when the declared members are over the budget."""
    count = 0
    total = 0
    in_entries = False
    for line in listing.splitlines():
        if line.startswith("----------"):
            in_entries = True
            continue
        if not in_entries:
            continue
        if line.startswith("Path = "):
            count += 1
        elif line.startswith("Size = "):
            with contextlib.suppress(ValueError):
                total += int(line[7:].strip() or 0)
    limits = budget.limits
    if limits.max_files and budget.files_extracted + count > limits.max_files:
        raise LimitExceeded("max-files", f"{what} declares {count} members")
    if limits.max_scan_size and total > budget.remaining_bytes:
        raise LimitExceeded(
            "max-scan-size", f"{what} declares {total} bytes, more than the budget left"
        )


def iter_7zz(
    data: Buffer,
    kind: str,
    budget: ExtractionBudget,
    tmpdir: Path,
    *,
    label: str = "",
    names: list[str] | None = None,
) -> Iterator[Member]:
    """Members of ``data`` read as 7-Zip type ``kind`` (``arj``, ``chm``, ``mslz``, ...);
    with ``names``, only the members stored under those exact names (no wildcards)."""
    what = label or kind
    tool = tool_path()
    if tool is None:
        yield Member(
            f"<{what}>", b"", len(data), problem=f"cannot open: {what} needs 7zz (7zip package)"
        )
        return
    work = tempfile.mkdtemp(prefix="aegis-7zz-", dir=tmpdir)
    try:
        src = os.path.join(work, "input")  # the folder is private: a fixed name is safe
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh, memoryview(data) as view:
            fh.write(view)
        budget.check_time()
        listing = run_tool([tool, "l", "-slt", "-p-", f"-t{kind}", "--", src], work, budget, what)
        _check_listing(listing, budget, what)
        out = os.path.join(work, "out")
        os.mkdir(out, 0o700)
        args = [*prlimit_args(budget), tool, "x", "-y", "-bd", "-p-", f"-t{kind}", f"-o{out}"]
        if names is not None:
            listfile = os.path.join(work, "names")
            with open(listfile, "w", encoding="utf-8", errors="surrogateescape") as fh:
                fh.writelines(f"{n}\n" for n in names if "\n" not in n and "\r" not in n)
            args += ["-spd", "-scsUTF-8", f"-i@{listfile}"]
        run_tool([*args, "--", src], work, budget, what)
        os.unlink(src)
        yield from read_tree(out, budget, tmpdir)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def read_tree(
    root: str, budget: ExtractionBudget, tmpdir: Path, prefix: str = ""
) -> Iterator[Member]:
    """The regular files a helper wrote under ``root`` (links and devices skipped), each
    charged to the budget and removed once read; named by their relative path."""
    for folder, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(folder, name)
            st = os.lstat(path)
            if not stat.S_ISREG(st.st_mode):
                continue
            budget.check_time()
            budget.add_file()
            rel = prefix + member_label(os.path.relpath(path, root))
            with (
                open(path, "rb") as fh,
                MemberSink(rel, budget, tmpdir, charge=True, declared_size=st.st_size) as sink,
            ):
                for chunk in iter(lambda fh=fh: fh.read(CHUNK), b""):  # type: ignore[misc]
                    if not sink.write(chunk):
                        break
                member = sink.member()
            os.unlink(path)
            yield member
