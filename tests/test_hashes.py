"""Hash lists in ClamAV's formats; allowlists override detections."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from aegis_engine.detectors.base import ScanObject
from aegis_engine.detectors.hashes import HashDetector, HashTable, parse_hash_line, read_hash_file
from aegis_engine.errors import HashListError
from aegis_engine.scanning.hashing import compute_hashes


def _obj(data: bytes, algos: frozenset[str]) -> ScanObject:
    return ScanObject(
        path="/x",
        name="x",
        data=data,
        size=len(data),
        hashes=compute_hashes(data, algos | {"sha256"}),
    )


def test_parse_lines() -> None:
    algo, digest, size, name = parse_hash_line("d41d8cd98f00b204e9800998ecf8427e:0:Empty.File")
    assert (algo, size, name) == ("md5", 0, "Empty.File") and len(digest) == 16
    assert parse_hash_line("a" * 40 + ":*:N")[0] == "sha1"
    assert parse_hash_line("A" * 64 + ":12:N:73")[0] == "sha256"  # extra fields ignored
    for bad in ("nohash", "zz:1:N", "a" * 31 + ":1:N", "a" * 32 + ":x:N", "a" * 32 + ":1:"):
        with pytest.raises(ValueError):
            parse_hash_line(bad)


def test_lookup_respects_size_and_wildcard(tmp_path: Path) -> None:
    data = b"some content" * 10
    md5 = hashlib.md5(data).hexdigest()
    sha1 = hashlib.sha1(data).hexdigest()
    hdb = tmp_path / "a.hdb"
    hdb.write_text(f"# comment\n\n{md5}:{len(data) + 1}:Wrong.Size\n")
    hsb = tmp_path / "b.hsb"
    hsb.write_text(f"{sha1}:*:Any.Size\n")
    warnings: list[str] = []
    det = HashDetector([hdb], warnings.append)
    assert det.hashes_needed == {"md5"}
    assert det.scan(_obj(data, det.hashes_needed)) == []
    det = HashDetector([hdb, hsb], warnings.append)
    assert det.hashes_needed == {"md5", "sha1"}
    [finding] = det.scan(_obj(data, det.hashes_needed))
    assert finding.name == "Any.Size" and finding.detector == "hashes"
    assert warnings == []


def test_malformed_lines_are_warned_and_skipped(tmp_path: Path) -> None:
    data = b"payload"
    good = hashlib.sha256(data).hexdigest()
    f = tmp_path / "mixed.hsb"
    f.write_text(f"garbage line\n{good}:{len(data)}:Good.One\nabc:1:Short\n")
    warnings: list[str] = []
    det = HashDetector([f], warnings.append)
    assert [x.name for x in det.scan(_obj(data, det.hashes_needed))] == ["Good.One"]
    assert len(warnings) == 2 and "mixed.hsb:1" in warnings[0]


def test_allowlist(tmp_path: Path) -> None:
    data = b"known good"
    sha = hashlib.sha256(data).hexdigest()
    (tmp_path / "b.hsb").write_text(f"{sha}:*:Blocked\n")
    (tmp_path / "a.sfp").write_text(f"{sha}:{len(data)}:Vendor.Tool\n")
    det = HashDetector([tmp_path / "b.hsb", tmp_path / "a.sfp"], lambda m: None)
    assert det.allowlisted(_obj(data, det.hashes_needed)) == "Vendor.Tool"
    assert det.allowlisted(_obj(b"other", det.hashes_needed)) is None


def test_version_follows_content(tmp_path: Path) -> None:
    f = tmp_path / "x.hsb"
    f.write_text("a" * 64 + ":*:One\n")
    v1 = HashDetector([f], lambda m: None).version
    f.write_text("b" * 64 + ":*:One\n")
    assert HashDetector([f], lambda m: None).version != v1


def test_unreadable_list_is_skipped_by_name_and_the_others_detect(tmp_path: Path) -> None:
    data = b"bad content" * 7
    good = tmp_path / "good.hsb"
    good.write_text(f"{hashlib.sha256(data).hexdigest()}:{len(data)}:Good.List\n")
    warnings: list[str] = []
    det = HashDetector([tmp_path / "missing.hsb", good, tmp_path], warnings.append)
    assert len(det.skipped) == 2 and "missing.hsb" in det.skipped[0]
    assert any("missing.hsb" in w and "skipped" in w for w in warnings)
    assert det.scan(_obj(data, det.hashes_needed))[0].name == "Good.List"


def test_list_vanishing_after_start_is_skipped(tmp_path: Path) -> None:
    data = b"x" * 50
    good, gone = tmp_path / "good.hsb", tmp_path / "gone.hdb"
    good.write_text(f"{hashlib.sha256(data).hexdigest()}:*:Good.List\n")
    gone.write_text(f"{hashlib.md5(b'y').hexdigest()}:1:Gone\n")
    faults: list[str] = []
    det = HashDetector([good, gone], lambda m: None, faults.append)
    gone.unlink()
    assert det.scan(_obj(data, det.hashes_needed))[0].name == "Good.List"
    assert len(faults) == 1 and "gone.hdb" in faults[0]
    with pytest.raises(HashListError):
        read_hash_file(gone, HashTable(), lambda m: None)


def test_compute_hashes_matches_hashlib() -> None:
    data = bytes(range(256)) * 9000  # > 1 slice
    h = compute_hashes(memoryview(data), ["md5", "sha1", "sha256"])
    assert h == {
        "md5": hashlib.md5(data).hexdigest(),
        "sha1": hashlib.sha1(data).hexdigest(),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
