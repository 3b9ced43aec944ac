"""YARA rules: the bundled curated rules, updated content and any rule pack the user points at.

Rule files (``*.yar``/``*.yara``, any case) are found under each of ``ctx.content.rule_paths``
(a folder searched recursively, or a single file). Every file gets its own namespace, so two
files may define rules with the same name. A file that does not compile is reported through
``ctx.warn`` and skipped; it never disables the other files.

Compiling a large pack takes seconds, so it happens lazily, on the first :meth:`scan` (or
:meth:`YaraDetector.ensure_loaded`), and the result is cached, sealed (yara_cache.py: no
plaintext a rule could match, integrity checked before ``yara.load``), under
``AegisPaths.compiled_rules_dir`` keyed by :attr:`YaraDetector.version`, a fingerprint of the
rule files' content computed without compiling. A rescan served from the scan cache therefore
never compiles anything.

Rule meta understood (all optional):

* ``severity``: ``info`` | ``suspicious`` | ``malicious`` (also ``low``/``medium``/``high``/
  ``critical``); rules without it (most third-party rules) are ``malicious``.
* ``score``: ``0..1`` (as a string, YARA meta has no floats) or an integer ``0..100``
  (LOKI/THOR style); the default depends on the severity.
* ``aegis_kind``: ``signature`` (default) | ``heuristic``.

The external variables of LOKI/THOR-style packs are defined: ``filename``, ``filepath``,
``extension``, ``filetype``, ``owner``, ``md5``, ``sha1``, ``sha256`` (all strings).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ContentError, DetectorError, LimitExceeded, RuleCompileError
from ..results import Finding, FindingKind, Severity
from .base import ScanObject
from .yara_cache import SealedRulesCache

if TYPE_CHECKING:
    from .registry import DetectorContext

DETECTOR_NAME = "yara"
RULE_EXTENSIONS: frozenset[str] = frozenset({".yar", ".yara"})
EXTERNALS: tuple[str, ...] = (
    "filename",
    "filepath",
    "extension",
    "filetype",
    "owner",
    "md5",
    "sha1",
    "sha256",
)
"""External variables every rule may use (as in LOKI/THOR); empty strings at compile time."""

_FORMAT = "aegis-yara-2"
"""Bump when the way matches become findings, or the cache format, changes: it is part of
``version``. (2: the cache is sealed, see yara_cache.py.)"""
_VALIDATE_AFTER_RETRIES = 4
"""After this many compile-drop-retry rounds, check the remaining files one by one instead."""

_DEFAULT_SCORE: Mapping[Severity, float] = {
    Severity.MALICIOUS: 1.0,
    Severity.SUSPICIOUS: 0.6,
    Severity.INFO: 0.2,
}
_SEVERITY_WORDS: Mapping[str, Severity] = {
    "info": Severity.INFO,
    "informational": Severity.INFO,
    "low": Severity.INFO,
    "suspicious": Severity.SUSPICIOUS,
    "medium": Severity.SUSPICIOUS,
    "malicious": Severity.MALICIOUS,
    "high": Severity.MALICIOUS,
    "critical": Severity.MALICIOUS,
}
_KIND_WORDS: Mapping[str, FindingKind] = {
    "signature": FindingKind.SIGNATURE,
    "heuristic": FindingKind.HEURISTIC,
}

# Double-quoted strings and comments are removed before looking for the md5/sha1 externals.
_STRIP_RE = re.compile(rb'"(?:\\.|[^"\\\n])*"|/\*.*?\*/|(?<!\S)//[^\n]*', re.DOTALL)
# A bare md5/sha1 identifier: not a module field (hash.md5), not a string/count/offset
# ($md5, #md5, @md5, !md5), not a function call (md5(...)), not a meta key (md5 = "...").
_HASH_EXTERNAL_RE = re.compile(rb"(md5|sha1)\b(?!\s*\()(?!\s*=(?!=))")
_NOT_BEFORE_EXTERNAL = frozenset(
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.$#@!/"
)
_INCLUDE_RE = re.compile(rb'^[ \t]*include[ \t]+"([^"\n]+)"', re.MULTILINE)
_MAX_INCLUDE_DEPTH = 8


@dataclass(frozen=True)
class RuleFile:
    """One rule file found under the rule paths."""

    namespace: str
    """Its YARA namespace: the path relative to its root (made unique if needed)."""
    path: Path
    sha256: str | None
    """Digest of the file's bytes (and of the files it includes); None if it was unreadable."""
    error: str | None = None
    """Why it could not be read, if so."""


def find_rule_files(roots: Iterable[Path]) -> tuple[list[tuple[str, Path]], list[str]]:
    """Every rule file under ``roots`` as ``(namespace, path)``, and problems met on the way.

    A root that is a file is taken whatever its extension (the user named it); folders are
    searched recursively for ``.yar``/``.yara`` files, skipping hidden files and folders and
    not following symlinked folders. The same file reached twice is listed once.
    """
    found: list[tuple[str, Path]] = []
    problems: list[str] = []
    used: set[str] = set()
    seen: set[str] = set()

    def add(rel: str, path: Path) -> None:
        real = os.path.realpath(path)
        if real in seen:
            return
        seen.add(real)
        ns, n = rel, 1
        while ns in used:
            n += 1
            ns = f"{rel}#{n}"
        used.add(ns)
        found.append((ns, path))

    for root in roots:
        root = Path(root)
        if root.is_file():
            add(root.name, root)
            continue
        if not root.is_dir():
            problems.append(f"YARA rule path {root} does not exist")
            continue

        def on_error(exc: OSError) -> None:
            problems.append(f"YARA rule folder {exc.filename} could not be read: {exc.strerror}")

        for dirpath, dirnames, filenames in os.walk(root, onerror=on_error):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for fname in sorted(filenames):
                if fname.startswith(".") or os.path.splitext(fname)[1].lower() not in (
                    RULE_EXTENSIONS
                ):
                    continue
                path = Path(dirpath, fname)
                if path.is_file():
                    add(path.relative_to(root).as_posix(), path)
    return found, problems


def _needs_hashes(source: bytes) -> set[str]:
    if b"md5" not in source and b"sha1" not in source:
        return set()  # the common case, and much faster than the regexes below
    stripped = _STRIP_RE.sub(b" ", source)
    return {
        m.group(1).decode()
        for m in _HASH_EXTERNAL_RE.finditer(stripped)
        if m.start() == 0 or stripped[m.start() - 1] not in _NOT_BEFORE_EXTERNAL
    }


def _content_digest(path: Path, data: bytes, needed: set[str], depth: int = 0) -> str:
    """sha256 of a rule file, folding in the files it includes (so the cache key follows
    them too); adds to ``needed`` the hash externals the sources use."""
    needed |= _needs_hashes(data)
    digest = hashlib.sha256(data)
    if b"include" in data and depth < _MAX_INCLUDE_DEPTH:
        for m in _INCLUDE_RE.finditer(data):
            target = path.parent / os.fsdecode(m.group(1))
            try:
                included = target.read_bytes()
            except OSError:
                digest.update(b"\0missing\0" + m.group(1))
                continue
            digest.update(b"\0include\0" + m.group(1) + b"\0")
            digest.update(_content_digest(target, included, needed, depth + 1).encode())
    return digest.hexdigest()


def _message_for(path: str, message: str) -> str:
    return f"YARA rule file {path} skipped: {message}"


def _external_str(value: object) -> str:
    """A str that yara-python can encode as UTF-8 (file names may carry surrogate escapes)."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text


def _severity(value: object) -> Severity:
    if isinstance(value, str):
        return _SEVERITY_WORDS.get(value.strip().lower(), Severity.MALICIOUS)
    return Severity.MALICIOUS


def _score(value: object, severity: Severity) -> float:
    default = _DEFAULT_SCORE[severity]
    score: float
    if isinstance(value, bool) or value is None:
        return default
    if isinstance(value, int):
        score = value / 100.0
    elif isinstance(value, str):
        try:
            score = float(value.strip())
        except ValueError:
            return default
        if score > 1.0:
            score /= 100.0
    else:
        return default
    if math.isnan(score) or score < 0.0:
        return default
    return min(score, 1.0)


def _kind(value: object) -> FindingKind:
    if isinstance(value, str):
        return _KIND_WORDS.get(value.strip().lower(), FindingKind.SIGNATURE)
    return FindingKind.SIGNATURE


class YaraDetector:
    """Matches YARA rules against each object. Thread-safe; compiles on first use."""

    name = DETECTOR_NAME

    def __init__(self, ctx: DetectorContext) -> None:
        self._ctx = ctx
        self._lock = threading.Lock()
        self._loaded = False
        self._failure: ContentError | None = None
        self._rules: Any = None  # yara.Rules once loaded (None if every file is broken)
        self.broken: list[tuple[str, str]] = []
        """``(path, message)`` of every rule file skipped; filled when the rules are loaded."""
        self.loaded_from_cache = False
        """True when the last load came from the compiled-rules cache."""
        self.rule_count: int | None = None
        """Number of rules loaded (None until loaded)."""

        listed, problems = find_rule_files(ctx.content.rule_paths)
        for problem in problems:
            ctx.warn(problem)
        files: list[RuleFile] = []
        needed: set[str] = set()
        for ns, path in listed:
            try:
                data = path.read_bytes()
            except OSError as exc:
                files.append(RuleFile(ns, path, None, exc.strerror or str(exc)))
                continue
            try:
                str(path).encode("utf-8")
            except UnicodeEncodeError:
                files.append(RuleFile(ns, path, None, "the file name is not valid UTF-8"))
                continue
            files.append(RuleFile(ns, path, _content_digest(path, data, needed)))
        self.rule_files: tuple[RuleFile, ...] = tuple(files)
        self._hashes_needed = frozenset(needed)
        self._version = self._fingerprint()
        self._cache = SealedRulesCache(
            ctx.paths.compiled_rules_dir, ctx.paths.rules_cache_key_file, ctx.warn
        )

    # Detector protocol ----------------------------------------------------------------------
    @property
    def version(self) -> str:
        return self._version

    @property
    def hashes_needed(self) -> frozenset[str]:
        """``md5``/``sha1`` when some rule source uses those externals (sha256 is always there)."""
        return self._hashes_needed

    def scan(self, obj: ScanObject) -> list[Finding]:
        try:
            self.ensure_loaded()
        except ContentError as exc:
            raise DetectorError(str(exc)) from exc
        rules = self._rules
        if rules is None:
            return []
        hashes = obj.hashes
        externals = {
            "filename": _external_str(obj.name),
            "filepath": _external_str(obj.path),
            "extension": _external_str(obj.extension),
            "filetype": _external_str(obj.filetype),
            "owner": _external_str(obj.owner),
            "md5": _external_str(hashes.get("md5", "")),
            "sha1": _external_str(hashes.get("sha1", "")),
            "sha256": _external_str(hashes.get("sha256", "")),
        }
        timeout = self._ctx.limits.yara_timeout
        import yara  # loaded with the rules already: imported here for its errors

        try:
            matches = rules.match(data=obj.data, externals=externals, timeout=timeout)
        except yara.TimeoutError as exc:
            raise LimitExceeded(
                "yara-timeout", f"YARA matching took longer than {timeout} s on {obj.path}"
            ) from exc
        except (yara.Error, ValueError, TypeError, UnicodeError) as exc:
            raise DetectorError(f"YARA matching failed on {obj.path}: {exc}") from exc
        return [self._finding(m) for m in matches]

    # Loading --------------------------------------------------------------------------------
    def ensure_loaded(self) -> None:
        """Compile the rules (or load them from the cache) now, if not done yet.

        Broken files are reported through ``ctx.warn`` once, here. Raises
        :class:`~aegis_engine.errors.RuleCompileError` if the rules cannot be built at all
        (and again on every later call, without retrying).
        """
        if not self._loaded:
            with self._lock:
                if not self._loaded:
                    try:
                        self._load()
                    except ContentError as exc:
                        self._failure = exc
                    self._loaded = True
        if self._failure is not None:
            raise self._failure

    def _load(self) -> None:
        by_ns = {f.namespace: f for f in self.rule_files}
        cached = self._cache.load(self._version)
        if cached is not None:
            rules, broken_ns = cached
            broken = [
                (str(by_ns[ns].path) if ns in by_ns else ns, message) for ns, message in broken_ns
            ]
            self.loaded_from_cache = True
        else:
            rules, broken = self._compile()
            self.loaded_from_cache = False
            if rules is not None:
                ns_by_path = {str(f.path): ns for ns, f in by_ns.items()}
                self._cache.save(
                    self._version,
                    rules,
                    [(ns_by_path.get(path, path), message) for path, message in broken],
                )
        self._rules = rules
        self.rule_count = sum(1 for _ in rules) if rules is not None else 0
        self.broken = broken
        for path, message in broken:
            self._ctx.report_fault(_message_for(path, message))

    def _compile(self) -> tuple[Any, list[tuple[str, str]]]:
        import yara

        broken: list[tuple[str, str]] = []
        pending: dict[str, str] = {}
        for f in self.rule_files:
            if f.error is not None:
                broken.append((str(f.path), f.error))
            else:
                pending[f.namespace] = str(f.path)
        externals = dict.fromkeys(EXTERNALS, "")
        validated = False
        retries = 0
        while pending:
            try:
                return yara.compile(filepaths=pending, externals=externals), broken
            except yara.Error as exc:
                message = str(exc)
                culprit = self._culprit(message, pending)
                if culprit is not None and (validated or retries < _VALIDATE_AFTER_RETRIES):
                    broken.append((pending.pop(culprit), message))
                    retries += 1
                    continue
                if validated:
                    raise RuleCompileError(f"YARA rules could not be compiled: {message}") from exc
                # Unknown culprit (or many broken files): check the files one by one.
                for ns, path in list(pending.items()):
                    try:
                        yara.compile(filepath=path, externals=externals)
                    except yara.Error as one:
                        broken.append((path, str(one)))
                        del pending[ns]
                validated = True
        return None, broken

    @staticmethod
    def _culprit(message: str, pending: Mapping[str, str]) -> str | None:
        """The namespace of the file a compiler message names (``<path>(<line>): ...``)."""
        best: str | None = None
        best_len = -1
        for ns, path in pending.items():
            if message.startswith(path + "(") and len(path) > best_len:
                best, best_len = ns, len(path)
        return best

    # Helpers --------------------------------------------------------------------------------
    def _fingerprint(self) -> str:
        doc = {
            "format": _FORMAT,
            "yara": yara_version(),
            "externals": list(EXTERNALS),
            "files": sorted(
                [f.namespace, f.sha256 if f.sha256 is not None else f"unreadable: {f.error}"]
                for f in self.rule_files
            ),
        }
        return hashlib.sha256(json.dumps(doc, sort_keys=True).encode("utf-8")).hexdigest()

    def _finding(self, match: Any) -> Finding:
        raw_meta: Mapping[str, object] = match.meta or {}
        meta = {str(k): v for k, v in raw_meta.items() if isinstance(v, (str, int, bool))}
        severity = _severity(meta.get("severity"))
        details: dict[str, Any] = {
            "namespace": str(match.namespace),
            "tags": [str(t) for t in match.tags],
            "meta": meta,
        }
        strings = sorted({str(s.identifier) for s in getattr(match, "strings", ())})
        if strings:
            details["strings"] = strings
        return Finding(
            detector=DETECTOR_NAME,
            name=str(match.rule),
            severity=severity,
            score=_score(meta.get("score"), severity),
            kind=_kind(meta.get("aegis_kind")),
            details=details,
        )


def make_detector(ctx: DetectorContext) -> YaraDetector | None:
    """The YARA detector for ``ctx.content.rule_paths``, or None when there is no rule file."""
    detector = YaraDetector(ctx)
    return detector if detector.rule_files else None


def yara_version() -> str:
    """yara-python's version, without importing it: the rules' fingerprint is computed in
    processes that never match (the tray app, ``aegis monitor``), which need not map YARA.
    yara-python's releases follow libyara's (both 4.5.4 here): a new YARA changes it."""
    from importlib import metadata

    try:
        return metadata.version("yara-python")
    except metadata.PackageNotFoundError:  # a build without the package's metadata
        import yara

        return str(yara.__version__)
