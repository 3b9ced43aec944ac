"""Behaviour rules for processes: loaded from a TOML data file, evaluated as pure logic.

The bundled rules are ``resources/behaviour_rules.toml`` (the file documents the format);
an updated copy in ``<data_dir>/content/behaviour_rules.toml`` takes precedence.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..content import bundled_resources
from ..errors import BehaviourRulesError
from ..paths import AegisPaths
from .events import RuleHit
from .options import FolderKinds

__all__ = ["RULES_FILE", "BehaviourRule", "BehaviourRules", "LiveBehaviourRules", "ProcessFacts"]

RULES_FILE = "behaviour_rules.toml"
_CONDITIONS = frozenset(
    {"name", "exe_in", "exe_not_in", "exe_deleted", "sha256", "verdict", "parent_name"}
)
_SEVERITIES = frozenset({"suspicious", "malicious"})
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FIELDS = ("name", "exe", "parent", "pid", "sha256", "user")


@dataclass(frozen=True)
class ProcessFacts:
    """What the rules may look at about one process."""

    pid: int
    name: str
    exe: str | None = None
    exe_deleted: bool = False
    sha256: str | None = None
    verdict: str | None = None
    ppid: int | None = None
    parent_name: str | None = None
    user: str | None = None

    def placeholders(self) -> dict[str, str]:
        return {
            "name": self.name,
            "exe": self.exe or self.name,
            "parent": self.parent_name or "?",
            "pid": str(self.pid),
            "sha256": self.sha256 or "?",
            "user": self.user or "?",
        }


def _globs(value: object, key: str, rule: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BehaviourRulesError(f"rule {rule}: {key} must be a list of strings")
    return tuple(value)


@dataclass(frozen=True)
class BehaviourRule:
    id: str
    title: str
    severity: str
    explanation: str
    when: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_table(cls, table: Mapping[str, Any]) -> BehaviourRule:
        rid = table.get("id")
        if not isinstance(rid, str) or not rid:
            raise BehaviourRulesError("every rule needs an id")
        severity = table.get("severity", "suspicious")
        if severity not in _SEVERITIES:
            raise BehaviourRulesError(f"rule {rid}: severity must be suspicious or malicious")
        explanation = table.get("explanation")
        if not isinstance(explanation, str) or not explanation:
            raise BehaviourRulesError(f"rule {rid}: an explanation is required")
        try:
            explanation.format(**dict.fromkeys(_FIELDS, ""))
        except (KeyError, IndexError, ValueError) as exc:
            raise BehaviourRulesError(f"rule {rid}: bad placeholder in explanation: {exc}") from exc
        when = table.get("when", {})
        if not isinstance(when, Mapping) or not when:
            raise BehaviourRulesError(f"rule {rid}: [rule.when] must hold at least one condition")
        unknown = set(when) - _CONDITIONS
        if unknown:
            raise BehaviourRulesError(
                f"rule {rid}: unknown condition(s) {', '.join(sorted(unknown))}"
            )
        clean: dict[str, Any] = {}
        for key, value in when.items():
            if key == "exe_deleted":
                if not isinstance(value, bool):
                    raise BehaviourRulesError(f"rule {rid}: exe_deleted must be true or false")
                clean[key] = value
            elif key == "sha256":
                hashes = _globs(value, key, rid)
                bad = [h for h in hashes if not _SHA256.match(h.lower())]
                if bad:
                    raise BehaviourRulesError(f"rule {rid}: not a SHA-256: {bad[0]}")
                clean[key] = frozenset(h.lower() for h in hashes)
            else:
                clean[key] = _globs(value, key, rid)
        return cls(rid, str(table.get("title", rid)), severity, explanation, clean)

    def matches(self, p: ProcessFacts, folders: FolderKinds) -> bool:
        return all(_holds(key, want, p, folders) for key, want in self.when.items())

    def hit(self, p: ProcessFacts) -> RuleHit:
        return RuleHit(self.id, self.severity, self.explanation.format(**p.placeholders()))


def _name_matches(name: str | None, globs: Sequence[str]) -> bool:
    if not name:
        return False
    low = name.lower()
    return any(fnmatch.fnmatchcase(low, g.lower()) for g in globs)


def _below(path: str, folder: str) -> bool:
    folder = folder.rstrip("/\\")
    if os.name == "nt":  # pragma: no cover - not run on the CI
        path, folder = path.lower(), folder.lower()
    return path == folder or path.startswith(folder + os.sep) or path.startswith(folder + "/")


def _in_any(exe: str, entries: Sequence[str], folders: FolderKinds) -> bool:
    real = os.path.realpath(exe) if os.path.exists(exe) else exe
    for entry in entries:
        places = folders.get(entry) if not os.path.isabs(entry) and "\\" not in entry else (entry,)
        for place in places:
            if _below(exe, place) or _below(real, place):
                return True
    return False


def _holds(key: str, want: Any, p: ProcessFacts, folders: FolderKinds) -> bool:
    if key == "name":
        exe_name = os.path.basename(p.exe) if p.exe else None
        return _name_matches(p.name, want) or _name_matches(exe_name, want)
    if key == "parent_name":
        return _name_matches(p.parent_name, want)
    if key == "exe_deleted":
        return bool(p.exe_deleted) is want
    if key == "sha256":
        return p.sha256 is not None and p.sha256.lower() in want
    if key == "verdict":
        return p.verdict is not None and p.verdict in want
    if key == "exe_in":
        return p.exe is not None and _in_any(p.exe, want, folders)
    if key == "exe_not_in":
        return p.exe is not None and not _in_any(p.exe, want, folders)
    return False  # pragma: no cover - keys are validated on load


@dataclass(frozen=True)
class BehaviourRules:
    rules: tuple[BehaviourRule, ...]
    source: str = "<memory>"

    @classmethod
    def parse(cls, text: str, source: str = "<memory>") -> BehaviourRules:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise BehaviourRulesError(f"{source}: {exc}") from exc
        if data.get("schema", 1) != 1:
            raise BehaviourRulesError(f"{source}: unsupported schema {data.get('schema')!r}")
        tables = data.get("rule", [])
        if not isinstance(tables, list):
            raise BehaviourRulesError(f"{source}: [[rule]] must be an array of tables")
        rules = tuple(BehaviourRule.from_table(t) for t in tables)
        ids = [r.id for r in rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise BehaviourRulesError(f"{source}: duplicate rule id(s) {', '.join(dupes)}")
        return cls(rules, source)

    @classmethod
    def load(cls, path: Path) -> BehaviourRules:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BehaviourRulesError(f"cannot read behaviour rules {path}: {exc}") from exc
        return cls.parse(text, str(path))

    @classmethod
    def default(cls, paths: AegisPaths) -> BehaviourRules:
        """The rules of the content in force (an installed update, else the bundled ones)."""
        from ..content import active_content

        updated = active_content(paths).root / RULES_FILE
        if updated.is_file():
            return cls.load(updated)
        return cls.load(bundled_resources() / RULES_FILE)

    def evaluate(self, p: ProcessFacts, folders: FolderKinds) -> list[RuleHit]:
        return [r.hit(p) for r in self.rules if r.matches(p, folders)]

    def with_sha256(self, rule_id: str, digests: Sequence[str]) -> BehaviourRules:
        """A copy where ``rule_id``'s sha256 list also holds ``digests`` (e.g. from settings)."""
        out = []
        for r in self.rules:
            if r.id == rule_id and "sha256" in r.when:
                when = dict(r.when)
                when["sha256"] = frozenset(when["sha256"]) | {d.lower() for d in digests}
                r = BehaviourRule(r.id, r.title, r.severity, r.explanation, when)
            out.append(r)
        return BehaviourRules(tuple(out), self.source)


class LiveBehaviourRules(BehaviourRules):
    """The behaviour rules of the content in force, re-read when another content version is
    switched in (one ``stat`` per evaluation). A new version whose rules do not load leaves
    the old rules in use."""

    _live: dict[str, Any]

    def __init__(self, paths: AegisPaths) -> None:
        from ..content import content_stamp

        first = BehaviourRules.default(paths)
        super().__init__(first.rules, first.source)
        object.__setattr__(self, "_live", {"paths": paths, "stamp": content_stamp(paths)})
        self._live["rules"] = first

    @property
    def current(self) -> BehaviourRules:
        from ..content import content_stamp

        live: dict[str, Any] = self._live
        stamp = content_stamp(live["paths"])
        if stamp != live["stamp"]:
            live["stamp"] = stamp
            with contextlib.suppress(BehaviourRulesError):
                live["rules"] = BehaviourRules.default(live["paths"])
        rules: BehaviourRules = live["rules"]
        return rules

    def evaluate(self, p: ProcessFacts, folders: FolderKinds) -> list[RuleHit]:
        return self.current.evaluate(p, folders)
