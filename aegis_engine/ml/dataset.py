"""Training data: the public PE header tables and the local benign PE corpus.

Both are turned into rows of :data:`~aegis_engine.ml.features.FEATURE_NAMES` by the same
:func:`~aegis_engine.ml.features.vector_from_header`. Splits are fixed by hashing, not by
row order or a random generator, so a row keeps its split across versions of the tables,
of this code and of the libraries:

* table rows are deduplicated on their header fields (rows whose copies disagree on the
  label are dropped) and split 60/20/20 into train/validation/test by the SHA-256 of the
  header fields;
* corpus files are deduplicated by content and split in two halves ("train", "holdout") by
  the SHA-256 of their *family* (the name without version digits: ``d3dx9_43.dll`` and
  ``d3dx9_24.dll`` are one family), so that near-identical siblings never straddle the split.
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .features import HEADER_FIELDS, FeatureStatus, extract, vector_from_header

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TABLES_DIR = REPO_ROOT.parent / "shared" / "datasets" / "pe-headers"
DEFAULT_CORPUS_DIR = REPO_ROOT / ".corpus" / "benign-pe"

TABLES: tuple[tuple[str, str], ...] = (
    ("clamp_raw_5184.csv", "class"),
    ("pe_malware_headers_20k.csv", "Malware"),
)
"""(file, label column). clamp_integrated_5184.csv is left out: nearly the same samples as
clamp_raw, and its extra fields (entropies, file size, packer) are not in the 20k table."""

SPLIT_SALT = "aegis-pe-split-v1"
CORPUS_SALT = "aegis-benign-corpus-v1"
_VALID_MAGIC = (0x10B, 0x20B)


@dataclass(frozen=True)
class TableRow:
    key: tuple[int, ...]
    """The raw header fields (in HEADER_FIELDS order): the deduplication key."""
    vector: tuple[float, ...]
    label: int
    source: str
    split: str


@dataclass
class TableStats:
    rows_read: int = 0
    invalid: int = 0
    duplicates: int = 0
    conflicting_keys: int = 0
    conflicting_rows: int = 0


@dataclass(frozen=True)
class CorpusFile:
    name: str
    family: str
    sha256: str
    size: int
    split: str
    status: FeatureStatus
    vector: tuple[float, ...]


def split_of(key: tuple[int, ...]) -> str:
    digest = hashlib.sha256((SPLIT_SALT + repr(key)).encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") % 100
    if bucket < 60:
        return "train"
    if bucket < 80:
        return "val"
    return "test"


def _read_table(
    path: Path, label_col: str, stats: TableStats
) -> Iterator[tuple[tuple[int, ...], int]]:
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            stats.rows_read += 1
            try:
                key = tuple(int(row[name]) for name in HEADER_FIELDS)
                label = int(row[label_col])
            except (KeyError, TypeError, ValueError):
                stats.invalid += 1
                continue
            if label not in (0, 1) or key[HEADER_FIELDS.index("Magic")] not in _VALID_MAGIC:
                stats.invalid += 1  # e.g. ClaMP rows with Magic 0: not parseable as PE
                continue
            yield key, label


def load_tables(tables_dir: Path = DEFAULT_TABLES_DIR) -> tuple[list[TableRow], TableStats]:
    """Every distinct table row with its fixed split, in a deterministic order."""
    stats = TableStats()
    seen: dict[tuple[int, ...], tuple[int, str]] = {}
    conflicts: set[tuple[int, ...]] = set()
    for name, label_col in TABLES:
        for key, label in _read_table(tables_dir / name, label_col, stats):
            prev = seen.get(key)
            if prev is None:
                seen[key] = (label, name)
                continue
            stats.duplicates += 1
            if prev[0] != label:
                conflicts.add(key)
    stats.conflicting_keys = len(conflicts)
    rows: list[TableRow] = []
    for key in sorted(seen):
        if key in conflicts:
            continue
        label, source = seen[key]
        header = dict(zip(HEADER_FIELDS, key, strict=True))
        rows.append(
            TableRow(
                key,
                vector_from_header({k: float(v) for k, v in header.items()}),
                label,
                source,
                split_of(key),
            )
        )
    stats.conflicting_rows = len(seen) - len(rows)
    return rows, stats


_VERSION_TAIL = re.compile(r"[\d_.\-]+$")
_VARIANT = re.compile(r"[-_.](x86|x64|amd64|i686|x86_64|ansi|unicode|solid|win32|posix)(?=$|[-_.])")
_EXTENSIONS = re.compile(r"\.(dll|exe|sys|drv|cpl|ocx|acm|tlb|com|ds|ax|bin|msstyles|efi)$")


def family_of(file_name: str) -> str:
    """The name without extension, build variant (x86/amd64, ansi/unicode...) and version
    digits: files of one family are near-identical builds and stay on one side of a split."""
    base = file_name.rsplit("__", 1)[-1].lower()  # corpus names flatten paths with "__"
    stem = _EXTENSIONS.sub("", base)
    prev = None
    while prev != stem:
        prev, stem = stem, _VARIANT.sub("", stem)
    return _VERSION_TAIL.sub("", stem) or stem


def corpus_split(family: str) -> str:
    digest = hashlib.sha256((CORPUS_SALT + family).encode()).digest()
    return "train" if digest[0] % 2 == 0 else "holdout"


def iter_pe_files(folder: Path) -> Iterator[Path]:
    """Regular files under ``folder`` starting with ``MZ``, in sorted order."""
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = Path(root) / name
            try:
                with path.open("rb") as fh:
                    if fh.read(2) == b"MZ":
                        yield path
            except OSError:
                continue


def load_corpus(folder: Path = DEFAULT_CORPUS_DIR) -> list[CorpusFile]:
    """Benign PE files under ``folder``, deduplicated by content, with their fixed half."""
    out: list[CorpusFile] = []
    seen: set[str] = set()
    for path in iter_pe_files(folder):
        data = path.read_bytes()
        sha = hashlib.sha256(data).hexdigest()
        if sha in seen:
            continue
        seen.add(sha)
        fam = family_of(path.name)
        res = extract(data)
        out.append(
            CorpusFile(
                name=str(path.relative_to(folder)),
                family=fam,
                sha256=sha,
                size=len(data),
                split=corpus_split(fam),
                status=res.status,
                vector=res.values,
            )
        )
    return out
