"""Plain data that scans produce: findings, per-object results, per-file reports, summaries."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How bad a single finding is on its own. ``info`` never makes a threat by itself."""

    INFO = "info"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"


class FindingKind(StrEnum):
    """What kind of evidence a finding is; the decision engine weighs kinds differently."""

    SIGNATURE = "signature"  # exact hash, curated YARA rule, EICAR
    HEURISTIC = "heuristic"  # structural oddity, generic rule
    ML = "ml"  # a model's score


class Verdict(StrEnum):
    CLEAN = "clean"
    SUSPICIOUS = "suspicious"
    MALICIOUS = "malicious"
    INCOMPLETE = "incomplete"
    ERROR = "error"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def is_threat(self) -> bool:
        return self in (Verdict.MALICIOUS, Verdict.SUSPICIOUS)


_RANK = {
    Verdict.CLEAN: 0,
    Verdict.INCOMPLETE: 1,
    Verdict.ERROR: 2,
    Verdict.SUSPICIOUS: 3,
    Verdict.MALICIOUS: 4,
}


def worst(verdicts: Any) -> Verdict:
    """The most serious of ``verdicts`` (clean when there are none)."""
    result = Verdict.CLEAN
    for v in verdicts:
        if v.rank > result.rank:
            result = v
    return result


@dataclass(frozen=True)
class Finding:
    """One detector's statement about one object."""

    detector: str
    name: str
    severity: Severity
    score: float = 1.0
    kind: FindingKind = FindingKind.SIGNATURE
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "detector": self.detector,
            "name": self.name,
            "score": self.score,
            "severity": self.severity.value,
            "kind": self.kind.value,
        }
        if self.details:
            out["details"] = dict(self.details)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Finding:
        return cls(
            detector=d["detector"],
            name=d["name"],
            severity=Severity(d["severity"]),
            score=float(d.get("score", 1.0)),
            kind=FindingKind(d.get("kind", "signature")),
            details=dict(d.get("details", {})),
        )


@dataclass
class ObjectResult:
    """The result for one scanned object: a file, or a member inside a container.

    ``path`` names members with ``!``: ``/home/u/a.zip!inner.tar.gz!x.exe``.
    """

    path: str
    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)
    sha256: str | None = None
    size: int | None = None
    problems: list[str] = field(default_factory=list)
    format: str | None = None
    """What the object was sniffed as (``PE``, ``OLE2``, ``PDF``, ... see scanning.sniff)."""
    container: str | None = None
    """For a member: the format of the container it was unpacked from."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.path,
            "verdict": self.verdict.value,
            "detections": [f.to_dict() for f in self.findings],
        }
        if self.format is not None:
            out["format"] = self.format
        if self.container is not None:
            out["container"] = self.container
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.size is not None:
            out["size"] = self.size
        if self.problems:
            out["problems"] = list(self.problems)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ObjectResult:
        return cls(
            path=d["path"],
            verdict=Verdict(d["verdict"]),
            findings=[Finding.from_dict(f) for f in d.get("detections", [])],
            sha256=d.get("sha256"),
            size=d.get("size"),
            problems=list(d.get("problems", [])),
            format=d.get("format"),
            container=d.get("container"),
        )


@dataclass
class FileReport:
    """Everything one top-level file produced. Only objects that are not clean are kept."""

    path: str
    verdict: Verdict
    objects: list[ObjectResult] = field(default_factory=list)
    sha256: str | None = None
    size: int = 0
    cached: bool = False

    @property
    def findings(self) -> list[Finding]:
        return [f for o in self.objects for f in o.findings]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "verdict": self.verdict.value,
            "sha256": self.sha256,
            "size": self.size,
            "objects": [o.to_dict() for o in self.objects],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, cached: bool = False) -> FileReport:
        return cls(
            path=d["path"],
            verdict=Verdict(d["verdict"]),
            objects=[ObjectResult.from_dict(o) for o in d.get("objects", [])],
            sha256=d.get("sha256"),
            size=int(d.get("size", 0)),
            cached=cached,
        )


@dataclass
class ScanSummary:
    """Counts for a whole scan, and the reports of every file that was not clean."""

    files: int = 0
    bytes: int = 0
    threats: int = 0
    incomplete: int = 0
    errors: int = 0
    cached: int = 0
    seconds: float = 0.0
    cancelled: bool = False
    reports: list[FileReport] = field(default_factory=list)

    def add(self, report: FileReport, *, is_file: bool = True) -> None:
        """Count one report; ``is_file=False`` for targets that could not even be walked."""
        self.files += is_file
        self.bytes += report.size
        self.cached += report.cached
        for obj in report.objects:
            if obj.verdict.is_threat:
                self.threats += 1
            elif obj.verdict is Verdict.INCOMPLETE:
                self.incomplete += 1
            elif obj.verdict is Verdict.ERROR:
                self.errors += 1
        if report.verdict is not Verdict.CLEAN:
            self.reports.append(report)

    @property
    def exit_code(self) -> int:
        """The CLI contract: 1 threats, 2 something could not be scanned, 0 clean."""
        if self.threats:
            return 1
        if self.incomplete or self.errors:
            return 2
        return 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "bytes": self.bytes,
            "threats": self.threats,
            "errors": self.errors + self.incomplete,
            "incomplete": self.incomplete,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "cancelled": self.cancelled,
        }


def verdict_from(findings: list[Finding], problems: list[str]) -> Verdict:
    """The raw verdict of one object before policy: its worst finding, else incomplete if
    something could not be scanned. ``info`` findings never make a threat."""
    severities = {f.severity for f in findings}
    if Severity.MALICIOUS in severities:
        return Verdict.MALICIOUS
    if Severity.SUSPICIOUS in severities:
        return Verdict.SUSPICIOUS
    if problems:
        return Verdict.INCOMPLETE
    return Verdict.CLEAN
