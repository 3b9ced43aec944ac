"""The decision engine: every finding about one object -> a verdict, an explanation, an action.

Pure logic, no I/O: the CLI, the monitor and the GUI all call :class:`DecisionEngine`, so they
agree on verdicts, on allowlisting (:class:`Exclusions`, applied here and nowhere else) and on
what to do (:class:`Policy`).

Verdict table. Findings of severity ``info`` never count, nor do findings whose name is
allowlisted. Kinds are ``signature`` (hash match, curated YARA rule, EICAR), ``heuristic`` and
``ml``; the last two are *weak* signals.

============================================================  ===========  ==============
evidence that counts                                          verdict      basis
============================================================  ===========  ==============
path glob or SHA-256 of the object (or its file) excluded     clean        excluded
a signature finding of severity malicious                     malicious    signature
a malicious weak finding (heuristic or ml) together with a    malicious    corroborated
non-info finding of *another* kind
any other non-info finding (one weak signal, several of one   suspicious   weak
kind, a suspicious signature, ...)
nothing                                                       clean, or    none
                                                              the scanner's
                                                              incomplete / error
============================================================  ===========  ==============

Two findings of the same kind (two heuristics, two models) are not independent evidence and
do not corroborate each other. A known-good answer of the cloud look-up (an ``info`` finding
of the ``cloud-reputation`` detector) clears findings only when every counted one is ``ml``;
the explanation says so. A known-bad answer is a malicious signature finding.

Actions. ``Policy.malicious`` (default ``quarantine``) applies to malicious verdicts and
``Policy.suspicious`` (default ``ask``) to suspicious ones; clean objects get ``none`` and
incomplete or failed scans ``report``. While ``Policy.quarantine_requires_signature`` is true
(the default), a ``quarantine`` action on a verdict that does not rest on a signature-grade
malicious finding is lowered to ``ask``: one weak signal, or weak signals together, never
quarantine automatically.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from .errors import ConfigError
from .results import FileReport, Finding, FindingKind, ObjectResult, Severity, Verdict, worst

__all__ = [
    "Action",
    "Basis",
    "Decision",
    "DecisionEngine",
    "Evidence",
    "Exclusions",
    "FileDecision",
    "Policy",
    "process_verdict",
]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_WEAK_KINDS = frozenset({FindingKind.HEURISTIC, FindingKind.ML})
_SOURCES = {
    "eicar": "the EICAR test-file check",
    "hashes": "a hash list",
    "yara": "a YARA rule",
    "ml": "the machine-learning model",
    "cloud-reputation": "the cloud look-up",
}
"""Plain words for where a finding came from (detector name -> words)."""


class Action(StrEnum):
    """What to do about an object, weakest first."""

    NONE = "none"
    REPORT = "report"
    ASK = "ask"
    QUARANTINE = "quarantine"

    @property
    def strength(self) -> int:
        return _ACTION_ORDER.index(self)


_ACTION_ORDER = (Action.NONE, Action.REPORT, Action.ASK, Action.QUARANTINE)
_POLICY_ACTIONS = frozenset({Action.REPORT, Action.ASK, Action.QUARANTINE})


class Basis(StrEnum):
    """What a verdict rests on."""

    NONE = "none"
    EXCLUDED = "excluded"
    SIGNATURE = "signature"
    CORROBORATED = "corroborated"
    WEAK = "weak"


def strongest(actions: Iterable[Action]) -> Action:
    """The strongest of ``actions`` (``none`` when there are none)."""
    result = Action.NONE
    for a in actions:
        if a.strength > result.strength:
            result = a
    return result


# --- configuration ---------------------------------------------------------------------------


def _action(value: object, key: str) -> Action:
    try:
        action = Action(str(value))
    except ValueError:
        action = Action.NONE
    if action not in _POLICY_ACTIONS:
        raise ConfigError(f"[decision] {key} must be report, ask or quarantine (got {value!r})")
    return action


@dataclass(frozen=True)
class Policy:
    """What to do per verdict. See the module docstring for the rules."""

    malicious: Action = Action.QUARANTINE
    suspicious: Action = Action.ASK
    quarantine_requires_signature: bool = True
    """Lower ``quarantine`` to ``ask`` unless a signature-grade malicious finding is present."""

    def __post_init__(self) -> None:
        _action(self.malicious, "malicious")
        _action(self.suspicious, "suspicious")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Policy:
        """Build from the ``[decision]`` table of the settings."""
        table = settings.get("decision", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[decision] in settings must be a table")
        unknown = set(table) - {"malicious", "suspicious", "quarantine_requires_signature"}
        if unknown:
            raise ConfigError(f"unknown [decision] setting(s): {', '.join(sorted(unknown))}")
        requires = table.get("quarantine_requires_signature", True)
        if not isinstance(requires, bool):
            raise ConfigError("[decision] quarantine_requires_signature must be true or false")
        return cls(
            malicious=_action(table.get("malicious", "quarantine"), "malicious"),
            suspicious=_action(table.get("suspicious", "ask"), "suspicious"),
            quarantine_requires_signature=requires,
        )


def _str_list(table: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = table.get(key, [])
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"[exclusions] {key} must be a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class Exclusions:
    """The allowlist, applied in one place: :meth:`DecisionEngine.decide`.

    ``paths`` are fnmatch globs matched against the file's full path and name and the
    object's path and name (``*`` also matches ``/``: ``/srv/builds/*`` covers everything
    below). ``sha256`` are hex digests of objects or files. ``signatures`` are finding names
    (case-sensitive globs: ``PUA.*``); matching findings are ignored, the others still count.
    """

    paths: tuple[str, ...] = ()
    sha256: frozenset[str] = frozenset()
    signatures: tuple[str, ...] = ()
    files: frozenset[tuple[str, str]] = frozenset()
    """(path, sha256) of files you kept (e.g. restored with ``--allow``): that file at that
    path is clean while its content is unchanged."""

    def __post_init__(self) -> None:
        normalized = frozenset(h.strip().lower() for h in self.sha256)
        files = frozenset((p, h.strip().lower()) for p, h in self.files)
        bad = sorted(h for h in normalized | {h for _, h in files} if not _SHA256_RE.match(h))
        if bad:
            raise ConfigError(f"not a SHA-256 in exclusions: {', '.join(bad)}")
        object.__setattr__(self, "sha256", normalized)
        object.__setattr__(self, "files", files)
        object.__setattr__(self, "paths", tuple(self.paths))
        object.__setattr__(self, "signatures", tuple(self.signatures))

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Exclusions:
        """Build from the ``[exclusions]`` table (``paths``, ``sha256``, ``signatures``)."""
        table = settings.get("exclusions", {})
        if not isinstance(table, Mapping):
            raise ConfigError("[exclusions] in settings must be a table")
        unknown = set(table) - {"paths", "sha256", "signatures", "files"}
        if unknown:
            raise ConfigError(f"unknown [exclusions] setting(s): {', '.join(sorted(unknown))}")
        files = table.get("files", [])
        if not isinstance(files, list | tuple) or not all(
            isinstance(f, Mapping)
            and isinstance(f.get("path"), str)
            and isinstance(f.get("sha256"), str)
            for f in files
        ):
            raise ConfigError(
                '[exclusions] files must be a list of { path = "...", sha256 = "..." }'
            )
        return cls(
            paths=tuple(os.path.expanduser(p) for p in _str_list(table, "paths")),
            sha256=frozenset(_str_list(table, "sha256")),
            signatures=_str_list(table, "signatures"),
            files=frozenset((f["path"], f["sha256"]) for f in files),
        )

    def kept_file(self, file_path: str, digest: str | None) -> bool:
        """True when you kept this file with this content (path and SHA-256 both match)."""
        return digest is not None and (file_path, digest.lower()) in self.files

    def path_pattern(self, file_path: str, object_path: str) -> str | None:
        """The first glob that matches the file or the object, else None."""
        candidates = {
            file_path,
            os.path.basename(file_path),
            object_path,
            object_path.rsplit("!", 1)[-1],
            os.path.basename(object_path.rsplit("!", 1)[-1]),
        }
        for pattern in self.paths:
            if any(fnmatch.fnmatch(c, pattern) for c in candidates):
                return pattern
        return None

    def excludes_sha256(self, digest: str | None) -> bool:
        return digest is not None and digest.lower() in self.sha256

    def signature_pattern(self, name: str) -> str | None:
        for pattern in self.signatures:
            if fnmatch.fnmatchcase(name, pattern):
                return pattern
        return None


# --- results ---------------------------------------------------------------------------------


def _thresholds(details: Mapping[str, Any]) -> dict[str, float]:
    raw = details.get("thresholds")
    if not isinstance(raw, Mapping):
        return {}
    out: dict[str, float] = {}
    for key, value in raw.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


@dataclass(frozen=True)
class Evidence:
    """One finding as the decision saw it: counted, or ignored and why."""

    detector: str
    name: str
    kind: FindingKind
    severity: Severity
    score: float
    thresholds: Mapping[str, float] = field(default_factory=dict)
    counted: bool = True
    ignored_because: str = ""

    @classmethod
    def of(cls, finding: Finding, *, ignored_because: str = "") -> Evidence:
        return cls(
            detector=finding.detector,
            name=finding.name,
            kind=finding.kind,
            severity=finding.severity,
            score=finding.score,
            thresholds=_thresholds(finding.details),
            counted=not ignored_because,
            ignored_because=ignored_because,
        )

    @property
    def weak(self) -> bool:
        return self.kind in _WEAK_KINDS

    def describe(self) -> str:
        """One line for people, e.g. ``ml model 'pe-gbt' (ml): suspicious, score 0.71 ...``."""
        what = {
            FindingKind.SIGNATURE: "known-malware signature",
            FindingKind.HEURISTIC: "heuristic",
            FindingKind.ML: "machine-learning score",
        }[self.kind]
        source = _SOURCES.get(self.detector, f"the {self.detector} detector")
        line = f"{self.name}: {what} ({source}), {self.severity.value}"
        if self.kind is not FindingKind.SIGNATURE or self.score != 1.0 or self.thresholds:
            line += f", score {self.score:.2f}"
        if self.thresholds:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in sorted(self.thresholds.items()))
            line += f" (thresholds: {parts})"
        if not self.counted:
            line += f" - ignored: {self.ignored_because}"
        return line

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "detector": self.detector,
            "name": self.name,
            "kind": self.kind.value,
            "severity": self.severity.value,
            "score": self.score,
            "counted": self.counted,
        }
        if self.thresholds:
            out["thresholds"] = dict(self.thresholds)
        if self.ignored_because:
            out["ignored_because"] = self.ignored_because
        return out


@dataclass(frozen=True)
class Decision:
    """The verdict about one object, what to do about it, and why - for people and programs."""

    object_path: str
    file_path: str
    verdict: Verdict
    action: Action
    basis: Basis
    explanation: tuple[str, ...]
    """Human-readable lines: the findings, the verdict, the action and why."""
    action_reason: str
    """Why this action was (or was not) chosen."""
    evidence: tuple[Evidence, ...] = ()
    excluded_by: str | None = None
    """The path glob or ``sha256:<digest>`` that excluded the object, if any."""
    sha256: str | None = None
    problems: tuple[str, ...] = ()

    @property
    def counted(self) -> tuple[Evidence, ...]:
        return tuple(e for e in self.evidence if e.counted)

    @property
    def detectors(self) -> tuple[str, ...]:
        """Detectors that fired with findings that count, in order, without repeats."""
        return tuple(dict.fromkeys(e.detector for e in self.counted))

    @property
    def signatures(self) -> tuple[str, ...]:
        """Names of the counted signature-grade findings (hash entries, rules, EICAR)."""
        return tuple(dict.fromkeys(e.name for e in self.counted if e.kind is FindingKind.SIGNATURE))

    @property
    def rules(self) -> tuple[str, ...]:
        """Names of every counted finding."""
        return tuple(dict.fromkeys(e.name for e in self.counted))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "path": self.object_path,
            "file": self.file_path,
            "verdict": self.verdict.value,
            "action": self.action.value,
            "basis": self.basis.value,
            "action_reason": self.action_reason,
            "detectors": list(self.detectors),
            "signatures": list(self.signatures),
            "evidence": [e.to_dict() for e in self.evidence],
            "explanation": list(self.explanation),
        }
        if self.excluded_by is not None:
            out["excluded_by"] = self.excluded_by
        if self.sha256 is not None:
            out["sha256"] = self.sha256
        if self.problems:
            out["problems"] = list(self.problems)
        return out


@dataclass(frozen=True)
class FileDecision:
    """The decisions about every object of one top-level file, and the action on that file.

    Any action applies to the file on disk (:attr:`file_path`): a malicious member makes
    its whole archive the thing to quarantine.
    """

    file_path: str
    decisions: tuple[Decision, ...]

    @property
    def verdict(self) -> Verdict:
        return worst(d.verdict for d in self.decisions)

    @property
    def action(self) -> Action:
        return strongest(d.action for d in self.decisions)

    @property
    def deciding(self) -> Decision | None:
        """The decision that set the file's action (the first of the strongest)."""
        for d in self.decisions:
            if d.action is self.action:
                return d
        return None

    @property
    def explanation(self) -> tuple[str, ...]:
        if len(self.decisions) == 1 and self.decisions[0].object_path == self.file_path:
            return self.decisions[0].explanation
        lines: list[str] = []
        for d in self.decisions:
            lines.append(f"{d.object_path}:")
            lines.extend(f"  {line}" for line in d.explanation)
        return tuple(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.file_path,
            "verdict": self.verdict.value,
            "action": self.action.value,
            "decisions": [d.to_dict() for d in self.decisions],
        }


KNOWN_GOOD_CLEARS_ML = (
    "the cloud look-up has this file's SHA-256 as known good, which outweighs a "
    "machine-learning score on its own"
)


def _clear_ml_if_known_good(
    evidence: tuple[Evidence, ...], findings: Iterable[Finding]
) -> tuple[Evidence, ...]:
    """A known-good cloud answer clears an ML-only finding (never a signature or heuristic)."""
    if not any(f.details.get("reputation") == "known-good" for f in findings):
        return evidence
    counted = [e for e in evidence if e.counted]
    if not counted or any(e.kind is not FindingKind.ML for e in counted):
        return evidence
    return tuple(
        replace(e, counted=False, ignored_because=KNOWN_GOOD_CLEARS_ML) if e.counted else e
        for e in evidence
    )


# --- the engine ------------------------------------------------------------------------------


_ACTION_WORDS = {
    Action.QUARANTINE: "move it to the encrypted quarantine",
    Action.ASK: "ask you what to do",
    Action.REPORT: "report it only",
}


def _weak_words(counted: list[Evidence]) -> str:
    kinds = ", ".join(sorted({e.kind.value for e in counted}))
    if all(e.weak for e in counted):
        return f"weak signals ({kinds})"
    return f"evidence short of a malicious signature ({kinds})"


@dataclass(frozen=True)
class DecisionEngine:
    """Turns the findings about an object into a :class:`Decision`. Stateless and thread-safe."""

    policy: Policy = field(default_factory=Policy)
    exclusions: Exclusions = field(default_factory=Exclusions)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DecisionEngine:
        return cls(Policy.from_settings(settings), Exclusions.from_settings(settings))

    def decide_report(self, report: FileReport) -> FileDecision:
        """Decide every object of one scanned file."""
        objects = list(report.objects)
        if not objects and report.verdict is not Verdict.CLEAN:
            objects = [ObjectResult(report.path, report.verdict, sha256=report.sha256)]
        decisions = tuple(
            self.decide(o, file_path=report.path, file_sha256=report.sha256) for o in objects
        )
        return FileDecision(report.path, decisions)

    def decide(
        self, obj: ObjectResult, *, file_path: str, file_sha256: str | None = None
    ) -> Decision:
        """Decide one object; ``file_path`` is the top-level file on disk that holds it."""
        problems = tuple(obj.problems)
        excluded = self.exclusions.path_pattern(file_path, obj.path)
        if excluded is None and self.exclusions.excludes_sha256(obj.sha256):
            excluded = f"sha256:{obj.sha256}"
        file_digest = file_sha256 or (obj.sha256 if obj.path == file_path else None)
        if excluded is None and self.exclusions.kept_file(file_path, file_digest):
            excluded = f"kept file {file_path} (sha256:{file_digest})"
        if excluded is not None:
            why = f"excluded by your allowlist ({excluded}); findings are not evaluated"
            return Decision(
                object_path=obj.path,
                file_path=file_path,
                verdict=Verdict.CLEAN,
                action=Action.NONE,
                basis=Basis.EXCLUDED,
                explanation=(f"Verdict clean: {why}.", "Action none: nothing to do."),
                action_reason=why,
                evidence=tuple(
                    Evidence.of(f, ignored_because="object excluded") for f in obj.findings
                ),
                excluded_by=excluded,
                sha256=obj.sha256,
                problems=problems,
            )

        evidence = _clear_ml_if_known_good(
            tuple(self._weigh(f) for f in obj.findings), obj.findings
        )
        counted = [e for e in evidence if e.counted]
        verdict, basis, verdict_line = self._verdict(counted, obj.verdict)
        action, action_line = self._action(verdict, basis, counted)

        lines = [e.describe() for e in evidence]
        lines.append(verdict_line)
        lines.extend(f"Scan problem: {p}" for p in problems)
        lines.append(action_line)
        return Decision(
            object_path=obj.path,
            file_path=file_path,
            verdict=verdict,
            action=action,
            basis=basis,
            explanation=tuple(lines),
            action_reason=action_line.split(": ", 1)[1],
            evidence=evidence,
            sha256=obj.sha256,
            problems=problems,
        )

    # -- steps ---------------------------------------------------------------------------------

    def _weigh(self, finding: Finding) -> Evidence:
        pattern = self.exclusions.signature_pattern(finding.name)
        if pattern is not None:
            return Evidence.of(finding, ignored_because=f"allowlisted signature name {pattern!r}")
        if finding.severity is Severity.INFO:
            return Evidence.of(finding, ignored_because="informational only")
        return Evidence.of(finding)

    @staticmethod
    def _verdict(counted: list[Evidence], scanned: Verdict) -> tuple[Verdict, Basis, str]:
        strong = [
            e
            for e in counted
            if e.kind is FindingKind.SIGNATURE and e.severity is Severity.MALICIOUS
        ]
        if strong:
            names = ", ".join(dict.fromkeys(e.name for e in strong))
            return (
                Verdict.MALICIOUS,
                Basis.SIGNATURE,
                f"Verdict malicious: {names} matches a known-malware signature, which is "
                "enough on its own.",
            )
        kinds = {e.kind for e in counted}
        for e in counted:
            if e.weak and e.severity is Severity.MALICIOUS and kinds - {e.kind}:
                others = ", ".join(sorted(k.value for k in kinds - {e.kind}))
                return (
                    Verdict.MALICIOUS,
                    Basis.CORROBORATED,
                    f"Verdict malicious: {e.kind.value} finding {e.name} rates it malicious "
                    f"and independent evidence ({others}) agrees.",
                )
        if counted:
            kind_list = ", ".join(sorted(k.value for k in kinds))
            if len(counted) == 1:
                why = f"one {kind_list} finding"
            elif len(kinds) == 1:
                why = f"{len(counted)} findings of one kind ({kind_list})"
            else:
                why = f"findings of kinds {kind_list}, none malicious on its own"
            return (
                Verdict.SUSPICIOUS,
                Basis.WEAK,
                f"Verdict suspicious: {why}; not enough to call it malicious.",
            )
        if scanned in (Verdict.INCOMPLETE, Verdict.ERROR):
            return (
                scanned,
                Basis.NONE,
                f"Verdict {scanned.value}: no detection, but the scan did not finish "
                "(see the problems below), so the object is not known to be clean.",
            )
        return Verdict.CLEAN, Basis.NONE, "Verdict clean: no finding counts."

    def _action(
        self, verdict: Verdict, basis: Basis, counted: list[Evidence]
    ) -> tuple[Action, str]:
        if verdict is Verdict.CLEAN:
            return Action.NONE, "Action none: nothing to do."
        if verdict in (Verdict.INCOMPLETE, Verdict.ERROR):
            return Action.REPORT, "Action report: nothing was detected, so nothing is done."
        wanted = self.policy.malicious if verdict is Verdict.MALICIOUS else self.policy.suspicious
        setting = f"your policy for {verdict.value} files is {wanted.value}"
        if (
            wanted is Action.QUARANTINE
            and basis is not Basis.SIGNATURE
            and self.policy.quarantine_requires_signature
        ):
            return (
                Action.ASK,
                f"Action ask: {setting}, but it rests only on {_weak_words(counted)} and "
                "files are quarantined automatically only on a signature-grade finding.",
            )
        line = f"Action {wanted.value}: {setting}, so Aegis will {_ACTION_WORDS[wanted]}"
        if wanted is not Action.QUARANTINE and basis is not Basis.SIGNATURE:
            line += f"; it rests only on {_weak_words(counted)}"
        return wanted, line + "."


def process_verdict(rule_severities: Iterable[str], file_verdict: Verdict | None) -> Verdict:
    """The verdict about a running process, from the behaviour rules it broke (their
    severities) and the decision about its executable (None: not scanned or clean).

    A malicious executable makes the process malicious; otherwise the worst rule severity
    decides (``malicious`` or ``suspicious``); a suspicious executable of a process that broke
    no rule makes it suspicious. No rule and no threat in the executable: clean."""
    severities = set(rule_severities)
    if file_verdict is Verdict.MALICIOUS or "malicious" in severities:
        return Verdict.MALICIOUS
    if severities or (file_verdict is not None and file_verdict.is_threat):
        return Verdict.SUSPICIOUS
    return Verdict.CLEAN
