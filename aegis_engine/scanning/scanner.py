"""Scans one top-level file and everything unpacked from it: hash once, run every detector,
unpack containers within the limits, and report each object that is not clean."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Protocol, runtime_checkable

from ..config import ScanOptions
from ..detectors.base import Buffer, Detector, ScanObject
from ..errors import AegisError, ContainerError, LimitExceeded
from ..results import FileReport, Finding, ObjectResult, Verdict, verdict_from, worst
from .budget import ExtractionBudget
from .containers import container_findings, iter_members
from .hashing import compute_hashes
from .sniff import is_container, sniff
from .walk import FileEntry

SNIFF_BYTES = 36 * 1024  # enough to see an ISO 9660 descriptor at 0x8001
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)
_NOATIME = getattr(os, "O_NOATIME", 0)
CHANGED_WHILE_SCANNED = "file changed while scanned"


def _read_whole(fd: int, size: int) -> bytes | None:
    """The file's ``size`` bytes, or None when it is shorter or longer than that now."""
    if size == 0:
        data = b""
    else:
        data = os.read(fd, size)
        if 0 < len(data) < size:  # short read: keep reading until the end or the size
            chunks = [data]
            got = len(data)
            while got < size:
                chunk = os.read(fd, min(size - got, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
            data = b"".join(chunks)
    if len(data) != size or (size and os.read(fd, 1)):
        return None
    return data


def _changed(fd: int, before: os.stat_result) -> bool:
    after = os.fstat(fd)
    return (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns)


@runtime_checkable
class Allowlister(Protocol):
    """A detector that can also say an object is known good (overrides every detection)."""

    def allowlisted(self, obj: ScanObject) -> str | None: ...


@lru_cache(maxsize=256)
def _owner_name(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (ImportError, KeyError):
        return str(uid)


def _open_noatime(path: str) -> int:
    if _NOATIME:
        try:
            return os.open(path, _OPEN_FLAGS | _NOATIME)
        except PermissionError:
            pass  # O_NOATIME is only allowed on one's own files
    return os.open(path, _OPEN_FLAGS)


class FileScanner:
    """Thread-safe: one instance serves every worker of a scan."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        options: ScanOptions,
        tmpdir: Path,
        warn: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.detectors = list(detectors)
        self.allowlisters = [d for d in self.detectors if isinstance(d, Allowlister)]
        self.options = options
        self.limits = options.limits
        self.tmpdir = tmpdir
        self.warn = warn
        algos = {"sha256"}
        for det in self.detectors:
            algos |= det.hashes_needed
        self.hash_algorithms = frozenset(algos)

    # -- top level ------------------------------------------------------------------------
    def scan_file(self, entry: FileEntry) -> FileReport | None:
        """Scan one file from the walk; None if it vanished or stopped being a regular file."""
        path = entry.path
        if entry.st.st_size > self.limits.max_file_size:
            return self._incomplete(
                path,
                entry.st.st_size,
                f"max-file-size: {entry.st.st_size} bytes is over the limit of "
                f"{self.limits.max_file_size}",
            )
        try:
            fd = _open_noatime(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno in (getattr(os, "ELOOP", -1), getattr(os, "ENXIO", -1)):
                return None  # replaced by a symlink or a special file since the walk
            return FileReport(
                path,
                Verdict.ERROR,
                [
                    ObjectResult(
                        path, Verdict.ERROR, problems=[f"cannot open: {exc.strerror or exc}"]
                    )
                ],
            )
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return None
            if st.st_size > self.limits.max_file_size:
                return self._incomplete(path, st.st_size, "max-file-size: grew over the limit")
            # Read, never map: a mapped file that shrinks under us raises SIGBUS (issue 12).
            data = _read_whole(fd, st.st_size)
            if data is None:
                return self._incomplete(path, st.st_size, CHANGED_WHILE_SCANNED)
            report = self._scan_top(path, data, st)
            if _changed(fd, st):
                report.objects.insert(
                    0,
                    ObjectResult(
                        path,
                        Verdict.INCOMPLETE,
                        sha256=report.sha256,
                        size=report.size,
                        problems=[CHANGED_WHILE_SCANNED],
                    ),
                )
                report.verdict = worst(o.verdict for o in report.objects)
            return report
        except OSError as exc:
            return FileReport(
                path,
                Verdict.ERROR,
                [
                    ObjectResult(
                        path, Verdict.ERROR, problems=[f"cannot read: {exc.strerror or exc}"]
                    )
                ],
            )
        finally:
            os.close(fd)

    def _scan_top(self, path: str, data: Buffer, st: os.stat_result) -> FileReport:
        size = len(data)
        obj = ScanObject(
            path=path,
            name=os.path.basename(path),
            data=data,
            size=size,
            filetype=sniff(bytes(data[:SNIFF_BYTES]), path),
            depth=0,
            owner=_owner_name(st.st_uid),
            disk_path=path,
        )
        budget = ExtractionBudget(self.limits)
        out: list[ObjectResult] = []
        try:
            self._scan_object(obj, budget, out)
        except LimitExceeded as exc:
            out.insert(
                0,
                ObjectResult(
                    path,
                    Verdict.INCOMPLETE,
                    sha256=obj.hashes.get("sha256"),
                    size=size,
                    problems=[str(exc)],
                ),
            )
        return FileReport(
            path=path,
            verdict=worst(o.verdict for o in out),
            objects=out,
            sha256=obj.hashes.get("sha256"),
            size=size,
        )

    @staticmethod
    def _incomplete(path: str, size: int, problem: str) -> FileReport:
        return FileReport(
            path,
            Verdict.INCOMPLETE,
            [ObjectResult(path, Verdict.INCOMPLETE, size=size, problems=[problem])],
            size=size,
        )

    # -- one object and its members -------------------------------------------------------
    def _scan_object(
        self, obj: ScanObject, budget: ExtractionBudget, out: list[ObjectResult]
    ) -> None:
        budget.check_time()
        obj.hashes = compute_hashes(obj.data, self.hash_algorithms)
        for allow in self.allowlisters:
            if allow.allowlisted(obj):
                return  # known good: no detection, and nothing inside it is reported
        slot = len(out)
        findings: list[Finding] = []
        problems: list[str] = []
        for det in self.detectors:
            try:
                findings.extend(det.scan(obj))
            except LimitExceeded as exc:
                problems.append(str(exc))
            except AegisError as exc:
                problems.append(f"{det.name}: {exc}")
            except MemoryError:
                raise  # the worker reports the file and retires (scanning/worker_main.py)
            except Exception as exc:  # a detector bug must not stop the scan
                problems.append(f"{det.name}: internal error: {exc!r}")
        if self.options.scan_archives and is_container(obj.filetype):
            findings.extend(container_findings(obj))
            if obj.depth >= self.limits.max_recursion:
                problems.append(
                    f"max-recursion: containers nested deeper than {self.limits.max_recursion}"
                )
            else:
                self._scan_members(obj, budget, out, problems)
        verdict = verdict_from(findings, problems)
        if verdict is not Verdict.CLEAN or findings:
            out.insert(
                slot,
                ObjectResult(
                    obj.path,
                    verdict,
                    findings,
                    obj.hashes.get("sha256"),
                    obj.size,
                    problems,
                    format=obj.filetype,
                ),
            )

    def _scan_members(
        self,
        obj: ScanObject,
        budget: ExtractionBudget,
        out: list[ObjectResult],
        problems: list[str],
    ) -> None:
        members = iter_members(obj, budget, self.tmpdir)
        if members is None:
            return
        try:
            for member in members:
                try:
                    child_path = f"{obj.path}!{member.name}"
                    if member.problem:
                        out.append(
                            ObjectResult(
                                child_path,
                                Verdict.INCOMPLETE,
                                size=member.size,
                                problems=[member.problem],
                                container=obj.filetype,
                            )
                        )
                        continue
                    child = ScanObject(
                        path=child_path,
                        name=member.name.rstrip("/").rsplit("/", 1)[-1],
                        data=member.data,
                        size=member.size,
                        filetype=sniff(bytes(member.data[:SNIFF_BYTES]), member.name),
                        depth=obj.depth + 1,
                    )
                    first = len(out)
                    self._scan_object(child, budget, out)
                    for result in out[first:]:
                        if result.path == child_path:
                            result.container = obj.filetype
                finally:
                    member.close()
        except LimitExceeded as exc:
            problems.append(str(exc))
        except ContainerError as exc:
            problems.append(f"archive: {exc}")
        finally:
            close = getattr(members, "close", None)
            if close is not None:
                close()
