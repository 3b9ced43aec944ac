"""Training data: the public PE header tables and the local benign PE corpus.

Both are turned into rows of :data:`~aegis_engine.ml.features.FEATURE_NAMES` by the same
:func:`~aegis_engine.ml.features.vector_from_header`. Splits are fixed by hashing, not by
row order or a random generator, so a row keeps its split across versions of the tables,
of this code and of the libraries:

* table rows are deduplicated on their header fields (rows whose copies disagree on the
  label are dropped) and split 60/20/20 into train/validation/test by the SHA-256 of the
  header fields;
* corpus files come from several *sources* (toolchains or kinds of file: Wine, MinGW, NSIS,
  .NET, EFI...), are deduplicated by content and split in two halves ("train", "holdout")
  by *family* within each source (a family is the name without version digits, so
  ``d3dx9_43.dll`` and ``d3dx9_24.dll`` are one, or a whole project such as ``efi/shim``),
  so that near-identical siblings never straddle the split and every source with two
  families or more has files on both sides (:func:`assign_splits`).
"""

from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from aegis_engine.ml.features import HEADER_FIELDS, FeatureStatus, extract, vector_from_header

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TABLES_DIR = REPO_ROOT.parent / "shared" / "datasets" / "pe-headers"
DEFAULT_CORPUS_DIR = REPO_ROOT / ".corpus" / "benign-pe"
"""The Wine corpus: ``bash ../shared/corpus/get-benign-pe.sh .corpus/benign-pe``."""
DEFAULT_EXTRA_DIR = REPO_ROOT / ".corpus" / "benign-pe-extra"
"""The other toolchains: ``bash bench/ml_get_extra_pe.sh .corpus/benign-pe-extra``."""

TABLES: tuple[tuple[str, str], ...] = (
    ("clamp_raw_5184.csv", "class"),
    ("pe_malware_headers_20k.csv", "Malware"),
)
"""(file, label column). clamp_integrated_5184.csv is left out: nearly the same samples as
clamp_raw, and its extra fields (entropies, file size, packer) are not in the 20k table."""

SPLIT_SALT = "aegis-pe-split-v1"
CORPUS_SALT = "aegis-benign-corpus-v2"
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
    """``<source>/<file name>``."""
    source: str
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
_VARIANT = re.compile(
    r"[-_.](x86|x64|amd64|i686|x86_64|arm64|arm|ansi|unicode|solid|win32|posix)(?=$|[-_.])"
)
_EXTENSIONS = re.compile(r"\.(dll|exe|sys|drv|cpl|ocx|acm|tlb|com|ds|ax|bin|msstyles|efi)$")


def family_of(file_name: str) -> str:
    """The name without extension, build variant (x86/amd64/arm64, ansi/unicode...) and
    version digits: files of one family are near-identical builds and stay on one side of a
    split (``cli-32.exe``, ``cli-64.exe`` and ``cli-arm64.exe`` are the family ``cli``)."""
    base = file_name.rsplit("__", 1)[-1].lower()  # corpus names flatten paths with "__"
    stem = _EXTENSIONS.sub("", base)
    prev = None
    while prev != stem:
        prev, stem = stem, _VARIANT.sub("", stem)
    return _VERSION_TAIL.sub("", stem) or stem


def family_rank(source: str, family: str) -> str:
    """The fixed order of a source's families for :func:`assign_splits` (a salted SHA-256)."""
    return hashlib.sha256(f"{CORPUS_SALT}\0{source}\0{family}".encode()).hexdigest()


def assign_splits(families: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """Train / held-out half of every (source, family).

    Within each source the families are put in :func:`family_rank` order and alternate
    holdout, train, holdout...: every source with two families or more has both halves, a
    source with one family is held out entirely, and a family never straddles the split.
    """
    by_source: dict[str, set[str]] = {}
    for source, family in families:
        by_source.setdefault(source, set()).add(family)
    out: dict[tuple[str, str], str] = {}
    for source, fams in by_source.items():
        ranked = sorted(fams, key=lambda f: family_rank(source, f))
        for i, fam in enumerate(ranked):
            out[(source, fam)] = "holdout" if i % 2 == 0 else "train"
    return out


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


def corpus_layout(wine_dir: Path | None, extra_dir: Path | None) -> list[tuple[Path, str, str]]:
    """(file, source, family) for every PE file of the corpora, in a fixed order.

    ``wine_dir`` (``shared/corpus/get-benign-pe.sh``) is the source ``wine``, families from
    file names. ``extra_dir`` (``bench/ml_get_extra_pe.sh``) holds one folder per source; a
    file directly in it gets its family from its name, a file in a sub-folder (a project
    such as ``efi/shim``) has that folder as its family.
    """
    out: list[tuple[Path, str, str]] = []
    if wine_dir is not None:
        out += [(p, "wine", family_of(p.name)) for p in iter_pe_files(wine_dir)]
    if extra_dir is not None:
        for src in sorted(d for d in extra_dir.iterdir() if d.is_dir()):
            for p in iter_pe_files(src):
                rel = p.relative_to(src)
                family = rel.parts[0] if len(rel.parts) > 1 else family_of(p.name)
                out.append((p, src.name, family))
    return out


@dataclass(frozen=True)
class CorpusEntry:
    path: Path
    source: str
    family: str
    sha256: str
    split: str


def index_corpora(
    wine_dir: Path | None = DEFAULT_CORPUS_DIR,
    extra_dir: Path | None = DEFAULT_EXTRA_DIR,
) -> list[CorpusEntry]:
    """Every distinct PE file of the corpora (the first copy in :func:`corpus_layout` order
    is kept) with its source, family and fixed half; reads and hashes, extracts nothing."""
    picked: list[tuple[Path, str, str, str]] = []
    seen: set[str] = set()
    for path, source, family in corpus_layout(wine_dir, extra_dir):
        digest = hashlib.sha256()
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        sha = digest.hexdigest()
        if sha not in seen:
            seen.add(sha)
            picked.append((path, source, family, sha))
    splits = assign_splits((s, f) for _, s, f, _ in picked)
    return [CorpusEntry(p, s, f, sha, splits[(s, f)]) for p, s, f, sha in picked]


def load_corpora(
    wine_dir: Path | None = DEFAULT_CORPUS_DIR,
    extra_dir: Path | None = DEFAULT_EXTRA_DIR,
) -> list[CorpusFile]:
    """:func:`index_corpora` with each file's features."""
    out: list[CorpusFile] = []
    for e in index_corpora(wine_dir, extra_dir):
        data = e.path.read_bytes()
        res = extract(data)
        out.append(
            CorpusFile(
                name=f"{e.source}/{e.path.name}",
                source=e.source,
                family=e.family,
                sha256=e.sha256,
                size=len(data),
                split=e.split,
                status=res.status,
                vector=res.values,
            )
        )
    return out
