"""Hash blocklists and allowlists, in ClamAV's formats so public hash lists work as they are.

Blocklists: ``.hdb`` (``MD5:SIZE:NAME``), ``.hsb`` (``HASH:SIZE:NAME`` with SHA-1 or SHA-256;
the algorithm follows from the hash length), and their ``.hdu``/``.hsu`` variants.
Allowlists: ``.fp`` (MD5) and ``.sfp`` (SHA-1/SHA-256), same line format. SIZE may be ``*``.
An allowlisted object is never reported, whatever other detectors say.

One list that cannot be read (missing, unreadable, a folder, a FIFO or device) is skipped
with a warning naming it (``fault``); every other list, the bundled ones included, keeps
detecting, and the skipped file is in :attr:`HashDetector.skipped`.
"""

from __future__ import annotations

import hashlib
import stat
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..bounded_io import read_regular_file
from ..errors import HashListError
from ..results import Finding, FindingKind, Severity
from .base import ScanObject

_ALGO_BY_LEN = {32: "md5", 40: "sha1", 64: "sha256"}
BLOCK_SUFFIXES = frozenset({".hdb", ".hsb", ".hdu", ".hsu"})
ALLOW_SUFFIXES = frozenset({".fp", ".sfp"})
_HEX = frozenset("0123456789abcdef")

Entry = tuple[int | None, str]  # (size or None for '*', signature name)


@dataclass
class HashTable:
    """hash algorithm -> raw digest -> entries."""

    by_algo: dict[str, dict[bytes, list[Entry]]] = field(default_factory=dict)
    count: int = 0

    def add(self, algo: str, digest: bytes, size: int | None, name: str) -> None:
        self.by_algo.setdefault(algo, {}).setdefault(digest, []).append((size, name))
        self.count += 1

    def lookup(self, hashes: Mapping[str, str], size: int) -> str | None:
        for algo, table in self.by_algo.items():
            hexdigest = hashes.get(algo)
            if not hexdigest:
                continue
            for entry_size, name in table.get(bytes.fromhex(hexdigest), ()):
                if entry_size is None or entry_size == size:
                    return name
        return None


def parse_hash_line(line: str) -> tuple[str, bytes, int | None, str]:
    """Parse ``HASH:SIZE:NAME`` (extra ``:fields`` such as a min. engine level are ignored)."""
    parts = line.split(":")
    if len(parts) < 3:
        raise ValueError("expected HASH:SIZE:NAME")
    digest_hex, size_text, name = parts[0].strip().lower(), parts[1].strip(), parts[2].strip()
    algo = _ALGO_BY_LEN.get(len(digest_hex))
    if algo is None or not set(digest_hex) <= _HEX:
        raise ValueError(f"not an MD5, SHA-1 or SHA-256 hash: {digest_hex[:70]!r}")
    if size_text == "*":
        size: int | None = None
    elif size_text.isdigit():
        size = int(size_text)
    else:
        raise ValueError(f"size must be a number or '*': {size_text[:30]!r}")
    if not name:
        raise ValueError("missing signature name")
    return algo, bytes.fromhex(digest_hex), size, name


def _read_list(path: Path) -> bytes:
    """The bytes of a hash list: a regular file (never a FIFO or device, which could block or
    never end); raises HashListError naming the file."""
    try:
        return read_regular_file(path, None)
    except OSError as exc:
        reason = exc.strerror if exc.strerror and exc.filename else str(exc)
        raise HashListError(f"cannot read hash list {path}: {reason}") from exc


def read_hash_file(path: Path, table: HashTable, warn: Callable[[str], None]) -> None:
    """Add the lines of one hash file to ``table``; bad lines are warned about and skipped."""
    text = _read_list(path).decode("utf-8", errors="replace")
    bad = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            table.add(*parse_hash_line(line))
        except ValueError as exc:
            bad += 1
            if bad <= 5:
                warn(f"{path}:{lineno}: skipped malformed hash line: {exc}")
    if bad > 5:
        warn(f"{path}: {bad} malformed lines skipped in all")


class HashDetector:
    """Looks objects up in the blocklists; also answers whether an object is allowlisted.

    The lists are read lazily on first use, so that a scan answered from the scan cache never
    pays for parsing them; ``version`` comes from the files' content alone.
    """

    name = "hashes"

    def __init__(
        self,
        files: Iterable[Path],
        warn: Callable[[str], None],
        fault: Callable[[str], None] | None = None,
    ) -> None:
        self._warn = warn
        self._fault = fault or warn
        self.skipped: list[str] = []
        """One line per list that could not be read (and is not used)."""
        digest = hashlib.sha256(b"hashes-1")
        usable: list[Path] = []
        for p in files:
            try:
                digest.update(p.suffix.encode() + b"\0" + _read_list(p))
            except HashListError as exc:
                self._skip(str(exc))
                continue
            usable.append(p)
        self._block_files = [p for p in usable if p.suffix.lower() in BLOCK_SUFFIXES]
        self._allow_files = [p for p in usable if p.suffix.lower() in ALLOW_SUFFIXES]
        self._lock = threading.Lock()
        self._block: HashTable | None = None
        self._allow: HashTable | None = None
        self.version = digest.hexdigest()[:16]
        self.hashes_needed = self._algos_in_files()

    def _algos_in_files(self) -> frozenset[str]:
        # Cheap: look at the first hash of each file; files mix algorithms rarely, and
        # load() re-checks exactly once the tables are built.
        algos: set[str] = set()
        for p in (*self._block_files, *self._allow_files):
            if p.suffix.lower() in (".hdb", ".hdu", ".fp"):
                algos.add("md5")
            try:
                data = _read_list(p)
            except HashListError:
                continue  # load() says so
            for raw in data.splitlines():
                token = raw.split(b":", 1)[0].strip()
                if token and not token.startswith(b"#"):
                    algo = _ALGO_BY_LEN.get(len(token))
                    if algo:
                        algos.add(algo)
        return frozenset(algos)

    def _skip(self, message: str) -> None:
        self.skipped.append(message)
        self._fault(f"{message}; skipped, the other hash lists are still used")

    def load(self) -> tuple[HashTable, HashTable]:
        with self._lock:
            if self._block is None or self._allow is None:
                block, allow = HashTable(), HashTable()
                for files, table in ((self._block_files, block), (self._allow_files, allow)):
                    for p in files:
                        try:
                            read_hash_file(p, table, self._warn)
                        except HashListError as exc:  # vanished or replaced since start-up
                            self._skip(str(exc))
                missing = (set(block.by_algo) | set(allow.by_algo)) - self.hashes_needed
                if missing:  # a file mixing algorithms past its first line
                    self.hashes_needed = self.hashes_needed | missing
                self._block, self._allow = block, allow
            return self._block, self._allow

    @property
    def signature_count(self) -> int:
        return self.load()[0].count

    def allowlisted(self, obj: ScanObject) -> str | None:
        """The allowlist entry's name when the object is known good, else None."""
        if not self._allow_files:
            return None
        return self.load()[1].lookup(obj.hashes, obj.size)

    def scan(self, obj: ScanObject) -> list[Finding]:
        if not self._block_files:
            return []
        name = self.load()[0].lookup(obj.hashes, obj.size)
        if name is None:
            return []
        return [
            Finding(
                detector=self.name,
                name=name,
                severity=Severity.MALICIOUS,
                score=1.0,
                kind=FindingKind.SIGNATURE,
                details={"match": "exact hash"},
            )
        ]


def make_detector(ctx: object) -> HashDetector | None:
    from .registry import DetectorContext

    assert isinstance(ctx, DetectorContext)
    files: list[Path] = []
    for p in ctx.content.hash_files:
        try:
            mode = p.stat().st_mode
        except OSError as exc:
            ctx.report_fault(f"cannot read hash list {p}: {exc.strerror or exc}; skipped")
            continue
        if not stat.S_ISREG(mode):
            ctx.report_fault(f"hash list {p} is not a regular file; skipped")
        elif p.suffix.lower() in BLOCK_SUFFIXES | ALLOW_SUFFIXES:
            files.append(p)
        else:
            ctx.warn(
                f"{p}: not a hash list this engine reads (.hdb .hsb .hdu .hsu .fp .sfp); skipped"
            )
    if not files:
        return None
    return HashDetector(files, ctx.warn, ctx.fault)
