"""k-anonymous range files for cloud hash look-ups (the design of breach-check range APIs).

The client sends only the first :data:`PREFIX_LEN` hex digits of a file's SHA-256 and gets
back every known hash with that prefix, known-bad and known-good, then decides locally. The
range files are static, so any web server or CDN can serve them:

``OUT/range/<prefix>``  one file per prefix that has entries (lower-case hex);
``OUT/range/empty``     the padded answer for a prefix without entries (serve it for any
                         missing prefix, e.g. nginx ``try_files $uri /range/empty;``; or
                         ``--all-prefixes`` writes every prefix as a hard link to it);
``OUT/ranges.json``     the format, the padded size and the counts.

Every file of one set has the same length: a header line, then exactly ``slots`` lines of
:data:`LINE_LEN` bytes, real entries mixed with random padding lines, so neither the length
nor the position of an answer says how many hashes a prefix holds. ``slots`` is the smallest
power of two (at least :data:`MIN_SLOTS`) that holds the fullest prefix.

Line: ``<59 hex suffix>:<B|G|->:<name padded to NAME_LEN>\\n`` (``B`` known-bad, ``G``
known-good, ``-`` padding).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from ..atomic import atomic_write
from ..errors import HashListError, LookupFailed

__all__ = [
    "HEADER",
    "LINE_LEN",
    "MIN_SLOTS",
    "PREFIX_LEN",
    "RangeEntry",
    "RangeSet",
    "Reputation",
    "parse_range",
    "prefix_of",
    "read_hash_list",
    "write_ranges",
]

PREFIX_LEN = 5
SUFFIX_LEN = 64 - PREFIX_LEN
NAME_LEN = 64
LINE_LEN = SUFFIX_LEN + 1 + 1 + 1 + NAME_LEN + 1
MIN_SLOTS = 16
HEADER = b"aegis-range 1\n"
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_NAME_OK = re.compile(r"[^A-Za-z0-9_.:!/+-]")


class Reputation(StrEnum):
    KNOWN_BAD = "known-bad"
    KNOWN_GOOD = "known-good"
    UNKNOWN = "unknown"


class RangeFormatError(LookupFailed):
    """A range file (an answer of the look-up service) is not in the expected format."""


@dataclass(frozen=True)
class RangeEntry:
    sha256: str
    reputation: Reputation
    name: str = ""


def prefix_of(sha256: str) -> str:
    """The part of a SHA-256 that is sent: its first five hex digits, lower case."""
    if not _HEX64.match(sha256):
        raise ValueError("not a SHA-256 hex digest")
    return sha256[:PREFIX_LEN].lower()


def read_hash_list(path: Path, warn: Callable[[str], None] | None = None) -> list[tuple[str, str]]:
    """``(sha256, name)`` pairs from a ClamAV ``.hsb``/``.hdb`` style list (``HASH:SIZE:NAME``;
    also accepts a bare hash per line). Hashes that are not SHA-256 are skipped, counted in
    one warning."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise HashListError(f"cannot read hash list {path}: {exc}") from exc
    out: list[tuple[str, str]] = []
    skipped = 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        digest = parts[0]
        if not _HEX64.match(digest):
            skipped += 1
            continue
        name = parts[2] if len(parts) >= 3 else (parts[1] if len(parts) == 2 else "")
        out.append((digest.lower(), name))
    if skipped and warn is not None:
        warn(f"{path}: {skipped} line(s) without a SHA-256 skipped (range files hold SHA-256 only)")
    return out


def _line(suffix: str, flag: str, name: str) -> bytes:
    clean = _NAME_OK.sub("_", name)[:NAME_LEN]
    return f"{suffix}:{flag}:{clean:<{NAME_LEN}}\n".encode("ascii")


def _padding_lines(n: int) -> list[bytes]:
    """``n`` padding lines with random suffixes (indistinguishable from real ones)."""
    pad = f":-:{'':<{NAME_LEN}}\n".encode("ascii")
    hexes = secrets.token_hex(32 * n) if n else ""
    return [hexes[i * 64 : i * 64 + SUFFIX_LEN].encode("ascii") + pad for i in range(n)]


def _swap_in(staging: Path, final: Path) -> None:
    """Replace the folder ``final`` by ``staging`` (the old set is removed afterwards)."""
    os.sync()  # the new files are on disk before any name points at them
    old: Path | None = None
    if final.exists():
        old = final.with_name(f".range-old-{secrets.token_hex(4)}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


@dataclass(frozen=True)
class RangeSet:
    """What :func:`write_ranges` wrote."""

    out: Path
    slots: int
    file_size: int
    prefixes: int
    known_bad: int
    known_good: int


def write_ranges(
    out: Path,
    known_bad: Iterable[tuple[str, str]],
    known_good: Iterable[tuple[str, str]] = (),
    *,
    all_prefixes: bool = False,
) -> RangeSet:
    """Write the range files for these hashes into ``out`` (see the module docstring).
    A hash on both lists counts as known-bad."""
    entries: dict[str, dict[str, tuple[str, str]]] = {}
    for digest, name in known_good:
        entries.setdefault(digest[:PREFIX_LEN], {})[digest[PREFIX_LEN:]] = ("G", name)
    bad = 0
    for digest, name in known_bad:
        entries.setdefault(digest[:PREFIX_LEN], {})[digest[PREFIX_LEN:]] = ("B", name)
    for bucket in entries.values():
        bad += sum(1 for flag, _ in bucket.values() if flag == "B")
    good = sum(len(b) for b in entries.values()) - bad
    fullest = max((len(b) for b in entries.values()), default=0)
    slots = MIN_SLOTS
    while slots < fullest:
        slots *= 2
    # Written into a fresh folder, then swapped in for the old one: a server never serves a
    # half-written set, and no file needs its own fsync (a set holds up to 16**5 files).
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".range-", dir=out))
    try:
        for prefix, bucket in entries.items():
            lines = [_line(s, f, n) for s, (f, n) in bucket.items()]
            lines += _padding_lines(slots - len(lines))
            _shuffle(lines)
            (staging / prefix).write_bytes(HEADER + b"".join(lines))
        empty = staging / "empty"
        empty.write_bytes(HEADER + b"".join(_padding_lines(slots)))
        if all_prefixes:
            for n in range(16**PREFIX_LEN):
                prefix = f"{n:05x}"
                if prefix not in entries:
                    os.link(empty, staging / prefix)
        os.chmod(staging, 0o755)
        _swap_in(staging, out / "range")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    size = len(HEADER) + slots * LINE_LEN
    meta = {
        "format": 1,
        "prefix_length": PREFIX_LEN,
        "slots": slots,
        "file_size": size,
        "prefixes": len(entries),
        "known_bad": bad,
        "known_good": good,
    }
    atomic_write(out / "ranges.json", (json.dumps(meta, indent=2) + "\n").encode())
    return RangeSet(out, slots, size, len(entries), bad, good)


def _shuffle(lines: list[bytes]) -> None:
    for i in range(len(lines) - 1, 0, -1):
        j = secrets.randbelow(i + 1)
        lines[i], lines[j] = lines[j], lines[i]


def parse_range(prefix: str, body: bytes) -> dict[str, RangeEntry]:
    """The entries of one range answer, by full SHA-256; padding lines are skipped.
    :class:`RangeFormatError` if the body is not a range file."""
    if not body.startswith(HEADER):
        raise RangeFormatError("the look-up service's answer is not a range file")
    rest = body[len(HEADER) :]
    if len(rest) % LINE_LEN:
        raise RangeFormatError("the look-up service's answer has a broken line")
    out: dict[str, RangeEntry] = {}
    for i in range(0, len(rest), LINE_LEN):
        line = rest[i : i + LINE_LEN].decode("ascii", errors="replace")
        suffix, flag, name = line[:SUFFIX_LEN], line[SUFFIX_LEN + 1], line[SUFFIX_LEN + 3 : -1]
        if flag == "-":
            continue
        if flag not in "BG" or line[SUFFIX_LEN] != ":" or line[SUFFIX_LEN + 2] != ":":
            raise RangeFormatError("the look-up service's answer has a broken line")
        rep = Reputation.KNOWN_BAD if flag == "B" else Reputation.KNOWN_GOOD
        digest = prefix + suffix.lower()
        out[digest] = RangeEntry(digest, rep, name.rstrip())
    return out


def lookup_in(entries: dict[str, RangeEntry], sha256: str) -> RangeEntry:
    return entries.get(sha256.lower(), RangeEntry(sha256.lower(), Reputation.UNKNOWN))


def read_lists(
    paths: Sequence[Path], warn: Callable[[str], None] | None = None
) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for p in paths:
        out.extend(read_hash_list(p, warn))
    return out
