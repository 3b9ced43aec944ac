"""Fuzz targets shared by the bounded run in the suite (tests/test_fuzz.py) and the long run
in ``bench/fuzz_long.py``. Each target takes bytes and checks the contract for hostile input:
only the documented errors (``AegisError`` and kin), never another exception, never a hang.

Inputs are mutations of small valid seeds (so the parsers get past their magic numbers) or
plain random bytes.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import lzma
import tarfile
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path

from helpers.pe_build import build_pe

from aegis_engine.bounded_io import loads_bounded
from aegis_engine.config import ScanLimits
from aegis_engine.content import ContentSources
from aegis_engine.detectors.base import ScanObject
from aegis_engine.detectors.hashes import HashDetector
from aegis_engine.detectors.registry import DetectorContext
from aegis_engine.detectors.yara_rules import YaraDetector
from aegis_engine.errors import AegisError
from aegis_engine.ml.features import FeatureStatus, extract
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import ConsentStore
from aegis_engine.quarantine import KeyStore
from aegis_engine.quarantine.journal import JournalRecord
from aegis_engine.scanning.budget import ExtractionBudget
from aegis_engine.scanning.containers import container_findings, iter_members
from aegis_engine.scanning.sniff import sniff
from aegis_engine.settings import SettingsStore

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

Target = Callable[[bytes, Path], None]


# -- seeds ------------------------------------------------------------------------------------


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"hello " * 20, compress_type=zipfile.ZIP_DEFLATED)
        zf.writestr("e.com", EICAR, compress_type=zipfile.ZIP_STORED)
        zf.writestr("b.bin", bytes(range(256)), compress_type=zipfile.ZIP_BZIP2)
    return buf.getvalue()


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in (("a.txt", b"hello"), ("dir/e.com", EICAR)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _7z() -> bytes:
    try:
        import py7zr
    except ImportError:  # pragma: no cover
        return b"7z\xbc\xaf\x27\x1c" + bytes(26)
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        z.writestr(EICAR, "e.com")
        z.writestr(b"hello " * 10, "a.txt")
    return buf.getvalue()


SEEDS: dict[str, bytes] = {
    "zip": _zip(),
    "tar": _tar(),
    "gzip": gzip.compress(EICAR * 3),
    "bzip2": bz2.compress(EICAR * 3),
    "xz": lzma.compress(EICAR * 3),
    "7z": _7z(),
    "pe": build_pe(nsections=1),
    "hashes": (
        b"# comment\n275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f:68:Eicar\n"
        b"44d88612fea8a8f36de82e1278abb02f:*:Eicar.Md5\n3395856ce81f2b7382dee72602f798b642f14140:68:E\n"
    ),
    "rules": (
        b'rule R1 : tag { meta: a = "b" strings: $a = "EICAR" nocase $h = { 4D 5A ?? 00 } '
        b"$r = /ab[c-f]{1,3}x/ condition: any of them and filesize < 1MB }\n"
        b'import "pe"\nrule R2 { condition: uint16(0) == 0x5A4D }\n'
    ),
    "settings": (
        b"[limits]\nmax_file_size = 1000000\nmax_recursion = 4\n[quarantine]\npurge_days = 3\n"
        b'use_keyring = false\n[policy]\nmalicious = "quarantine"\n[exclusions]\n'
        b'paths = ["/tmp/x"]\n'
    ),
    "consent": (
        b'{"format": 1, "reviewed_at": "2026-01-01T00:00:00Z", "purposes": {"update-checks": '
        b'{"granted": true, "changed_at": "2026-01-01T00:00:00Z"}}}'
    ),
    "journal": (
        b'{"op": "quarantine", "item_id": "00ff", "path": "/tmp/x", "dev": 1, "ino": 2, '
        b'"temp_name": null, "final_name": null, "sha256": "ab"}'
    ),
    "vault_index": b'{"format": 1, "install_id": "ab", "key_source": "file", "key_check": "x"}',
}


def mutate(seed: bytes, edits: Sequence[tuple[int, int]], cut: int | None, tail: bytes) -> bytes:
    """``seed`` with bytes replaced at (offset, value), cut at ``cut`` and ``tail`` appended."""
    data = bytearray(seed)
    for offset, value in edits:
        if data:
            data[offset % len(data)] = value & 0xFF
    if cut is not None and data:
        del data[cut % (len(data) + 1) :]
    return bytes(data) + tail


# -- targets ---------------------------------------------------------------------------------


def container(data: bytes, tmp: Path) -> None:
    """Every container handler: sniffed by content, unpacked recursively within limits."""
    limits = ScanLimits(max_scan_size=4 << 20, max_files=200, max_recursion=3)
    budget = ExtractionBudget(limits)
    _walk(data, "fuzz", budget, tmp, 0)


def _walk(data: bytes, name: str, budget: ExtractionBudget, tmp: Path, depth: int) -> None:
    obj = ScanObject(path=name, name=name, data=data, size=len(data), filetype=sniff(data, name))
    findings = container_findings(obj)
    assert isinstance(findings, list)
    try:
        members = iter_members(obj, budget, tmp)
        if members is None:
            return
        for m in members:
            try:
                if m.problem is None and depth < 2:
                    _walk(bytes(m.data), f"{name}!{m.name}", budget, tmp, depth + 1)
            finally:
                m.close()
    except AegisError:
        pass  # ContainerError, LimitExceeded: reported as incomplete, never a crash


def pe_features(data: bytes, tmp: Path) -> None:
    res = extract(data)
    assert isinstance(res.status, FeatureStatus)
    if res.ok:
        assert res.values is not None and all(v == v for v in res.values)  # no NaN


def hash_list(data: bytes, tmp: Path) -> None:
    files = []
    for suffix in (".hsb", ".hdb", ".fp"):
        f = tmp / f"fuzz{suffix}"
        f.write_bytes(data)
        files.append(f)
    warnings: list[str] = []
    det = HashDetector(files, warnings.append)
    det.load()
    obj = ScanObject(path="x", name="x", data=EICAR, size=len(EICAR), hashes={"md5": "0" * 32})
    det.scan(obj)
    det.allowlisted(obj)


def rules(data: bytes, tmp: Path) -> None:
    rule_dir = tmp / "rules"
    rule_dir.mkdir(exist_ok=True)
    (rule_dir / "fuzz.yar").write_bytes(data)
    (rule_dir / "good.yar").write_bytes(b'rule Good { strings: $a = "EICAR" condition: $a }\n')
    paths = AegisPaths.under(tmp / "home")
    content = ContentSources(rule_paths=(rule_dir,), hash_files=(), model_dir=None)
    warnings: list[str] = []
    ctx = DetectorContext(paths, content, ScanLimits(), warnings.append)
    try:
        det = YaraDetector(ctx)
        obj = ScanObject(path="x", name="x", data=EICAR, size=len(EICAR))
        names = [f.name for f in det.scan(obj)]
    except AegisError:
        return
    assert "Good" in names, (names, warnings)  # one broken file never disables the others


def settings(data: bytes, tmp: Path) -> None:
    path = tmp / "settings.toml"
    path.write_bytes(data)
    try:
        parsed = SettingsStore(path).current
        _ = parsed.limits, parsed.quarantine, parsed.updates, parsed.cloud
        parsed.decision_engine()
    except AegisError:
        pass


def json_files(data: bytes, tmp: Path) -> None:
    """The consent file, the vault index (vault.json) and a journal record."""
    paths = AegisPaths.under(tmp / "home")
    paths.config_dir.mkdir(parents=True, exist_ok=True)
    (paths.config_dir / "consent.json").write_bytes(data)
    store = ConsentStore.for_paths(paths, warn=lambda m: None)
    assert len(store.states()) >= 1
    store.is_granted("update-checks")
    vault_dir = tmp / "vault"
    vault_dir.mkdir(exist_ok=True)
    (vault_dir / "vault.json").write_bytes(data)
    status = KeyStore(vault_dir, tmp / "key", warn=lambda m: None).status()
    assert status.where in ("keyring", "file", "none", "unknown")
    # ValueError, TypeError, KeyError: what Journal.pending() sets aside as damaged
    with contextlib.suppress(ValueError, TypeError, KeyError):
        JournalRecord.from_json(data)
    with contextlib.suppress(ValueError):
        loads_bounded(data)


TARGETS: dict[str, tuple[Target, tuple[str, ...]]] = {
    "containers": (container, ("zip", "tar", "gzip", "bzip2", "xz", "7z")),
    "pe_features": (pe_features, ("pe",)),
    "hash_lists": (hash_list, ("hashes",)),
    "rules": (rules, ("rules",)),
    "settings": (settings, ("settings",)),
    "json_files": (json_files, ("consent", "journal", "vault_index")),
}
"""name -> (target, seed names)."""
