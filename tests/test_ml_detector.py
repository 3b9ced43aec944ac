"""The ML detector: integrity checks, lazy onnxruntime, findings, threads, real PE files."""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.pe_build import build_pe

from aegis_engine.config import ScanLimits
from aegis_engine.content import ContentSources
from aegis_engine.detectors.base import Detector, ScanObject
from aegis_engine.detectors.registry import BUILTIN_FACTORIES, DetectorContext
from aegis_engine.ml.detector import (
    NAME_MALICIOUS,
    NAME_SUSPICIOUS,
    MLDetector,
    make_detector,
)
from aegis_engine.ml.features import FEATURE_NAMES
from aegis_engine.ml.manifest import MANIFEST_NAME, load_manifest
from aegis_engine.paths import AegisPaths
from aegis_engine.results import FindingKind, Severity
from tools.ml.dataset import (
    DEFAULT_CORPUS_DIR,
    DEFAULT_EXTRA_DIR,
    index_corpora,
    iter_pe_files,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL_DIR = ROOT / "resources" / "model"
CORPUS = DEFAULT_CORPUS_DIR
EXTRA_CORPUS = DEFAULT_EXTRA_DIR


def small_pe() -> bytes:
    """A minimal well-formed PE32 executable (headers plus one section)."""
    return build_pe(nsections=1)


def pe_object(data: bytes, name: str = "a.exe", filetype: str = "PE") -> ScanObject:
    return ScanObject(path=name, name=name, data=data, size=len(data), filetype=filetype)


def context(model_dir: Path | None, warnings: list[str], tmp: Path) -> DetectorContext:
    return DetectorContext(
        paths=AegisPaths.under(tmp / "home"),
        content=ContentSources(rule_paths=(), hash_files=(), model_dir=model_dir),
        limits=ScanLimits(),
        warn=warnings.append,
    )


def copy_model(tmp: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    dest = tmp / "model"
    shutil.copytree(MODEL_DIR, dest)
    if edit is not None:
        path = dest / MANIFEST_NAME
        manifest = json.loads(path.read_text())
        edit(manifest)
        path.write_text(json.dumps(manifest))
    return dest


@pytest.fixture
def detector(tmp_path: Path) -> MLDetector:
    warnings: list[str] = []
    det = make_detector(context(MODEL_DIR, warnings, tmp_path))
    assert det is not None, warnings
    assert warnings == []
    return det


# The shipped model --------------------------------------------------------------------


def test_shipped_model_matches_its_manifest() -> None:
    manifest = load_manifest(MODEL_DIR)
    blob = (MODEL_DIR / manifest.model_file).read_bytes()
    assert hashlib.sha256(blob).hexdigest() == manifest.sha256
    assert len(blob) <= 5 * 1024 * 1024
    assert set(manifest.features) <= set(FEATURE_NAMES)
    # The model card's choice: no checksum field (a zero checksum marks "not a Windows
    # system file", not malware).
    assert not {"CheckSum", "CheckSumIsZero"} & set(manifest.features)
    assert 0.0 < manifest.thresholds.suspicious < manifest.thresholds.malicious < 1.0


def test_detector_protocol(detector: MLDetector) -> None:
    assert isinstance(detector, Detector)
    assert detector.name == "ml"
    assert detector.hashes_needed == frozenset()
    assert detector.version == load_manifest(MODEL_DIR).sha256


def test_registered_as_builtin() -> None:
    assert "aegis_engine.ml.detector:make_detector" in BUILTIN_FACTORIES


# Integrity: missing or tampered models disable ML and nothing else -----------------------


def test_tampered_model_disables_the_detector(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path)
    onnx_path = model_dir / load_manifest(model_dir).model_file
    blob = bytearray(onnx_path.read_bytes())
    blob[len(blob) // 2] ^= 0x01
    onnx_path.write_bytes(bytes(blob))
    warnings: list[str] = []
    assert make_detector(context(model_dir, warnings, tmp_path)) is None
    assert len(warnings) == 1
    assert "tampered" in warnings[0] and "ML detection disabled" in warnings[0]


def test_replaced_model_of_same_size_is_refused(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path)
    onnx_path = model_dir / load_manifest(model_dir).model_file
    onnx_path.write_bytes(bytes(onnx_path.stat().st_size))
    warnings: list[str] = []
    assert make_detector(context(model_dir, warnings, tmp_path)) is None
    assert len(warnings) == 1 and "tampered" in warnings[0]


def test_missing_model_file(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path)
    (model_dir / load_manifest(model_dir).model_file).unlink()
    warnings: list[str] = []
    assert make_detector(context(model_dir, warnings, tmp_path)) is None
    assert len(warnings) == 1 and "not found" in warnings[0]


@pytest.mark.parametrize("content", [None, "{not json", "[]", '{"format": 1}'])
def test_missing_or_broken_manifest(tmp_path: Path, content: str | None) -> None:
    model_dir = copy_model(tmp_path)
    if content is None:
        (model_dir / MANIFEST_NAME).unlink()
    else:
        (model_dir / MANIFEST_NAME).write_text(content)
    warnings: list[str] = []
    assert make_detector(context(model_dir, warnings, tmp_path)) is None
    assert len(warnings) == 1 and "ML detection disabled" in warnings[0]


def test_no_model_folder(tmp_path: Path) -> None:
    warnings: list[str] = []
    assert make_detector(context(None, warnings, tmp_path)) is None
    assert len(warnings) == 1


def test_model_file_name_cannot_escape_the_folder(tmp_path: Path) -> None:
    model_dir = copy_model(tmp_path, lambda m: m.update(model_file="../model/x.onnx"))
    warnings: list[str] = []
    assert make_detector(context(model_dir, warnings, tmp_path)) is None
    assert len(warnings) == 1


def test_feature_set_mismatch(tmp_path: Path) -> None:
    model_dir = copy_model(
        tmp_path, lambda m: m.update(features=[*m["features"][:-1], "NoSuchFeature"])
    )
    warnings: list[str] = []
    assert make_detector(context(model_dir, warnings, tmp_path)) is None
    assert len(warnings) == 1 and "feature" in warnings[0] and "NoSuchFeature" in warnings[0]


@pytest.mark.parametrize("edit", ["version", "duplicate", "empty"])
def test_feature_list_must_be_usable(tmp_path: Path, edit: str) -> None:
    def change(m: dict[str, Any]) -> None:
        if edit == "version":
            m["feature_version"] += 1
        elif edit == "duplicate":
            m["features"] = [*m["features"][:-1], m["features"][0]]
        else:
            m["features"] = []

    model_dir = copy_model(tmp_path, change)
    warnings: list[str] = []
    assert make_detector(context(model_dir, warnings, tmp_path)) is None
    assert len(warnings) == 1 and "feature" in warnings[0]


def _loads_at_the_first_pe_file_then_warns_once(model_dir: Path, tmp_path: Path) -> None:
    """The detector is made without a warning; the first PE file finds the model cannot be
    loaded: one warning, no finding, then no finding and no more warnings."""
    warnings: list[str] = []
    det = make_detector(context(model_dir, warnings, tmp_path))
    assert det is not None and warnings == []
    assert det.scan(pe_object(small_pe())) == []
    assert det.scan(pe_object(small_pe())) == []
    assert len(warnings) == 1 and "could not be loaded" in warnings[0]


def test_feature_count_must_match_the_model_input(tmp_path: Path) -> None:
    """Known names, one too few for the ONNX input: disabled (once) at the first PE file."""
    model_dir = copy_model(tmp_path, lambda m: m.update(features=m["features"][:-1]))
    _loads_at_the_first_pe_file_then_warns_once(model_dir, tmp_path)


def test_model_onnxruntime_cannot_load_warns_once_and_scans_on(tmp_path: Path) -> None:
    junk = b"this is not an onnx model"

    def edit(m: dict[str, Any]) -> None:
        m.update(sha256=hashlib.sha256(junk).hexdigest(), size=len(junk))

    model_dir = copy_model(tmp_path, edit)
    (model_dir / load_manifest(model_dir).model_file).write_bytes(junk)
    _loads_at_the_first_pe_file_then_warns_once(model_dir, tmp_path)


# Lazy onnxruntime ----------------------------------------------------------------------

LAZY_SCRIPT = """
import sys, struct
from pathlib import Path
import aegis_engine
from aegis_engine.content import ContentSources
from aegis_engine.paths import AegisPaths
from aegis_engine.config import ScanLimits
from aegis_engine.detectors.registry import DetectorContext
from aegis_engine.detectors.base import ScanObject
from aegis_engine.ml.detector import make_detector
warnings = []
ctx = DetectorContext(AegisPaths.under(Path(sys.argv[1])),
                      ContentSources((), (), Path(sys.argv[2])), ScanLimits(), warnings.append)
det = make_detector(ctx)
assert det is not None, warnings
print("after make_detector:", "onnxruntime" in sys.modules)
text = b"hello" * 100
det.scan(ScanObject(path="t", name="t", data=text, size=len(text), filetype="TEXT"))
print("after a text file:", "onnxruntime" in sys.modules)
pe = open(sys.argv[3], "rb").read()
det.scan(ScanObject(path="p", name="p.exe", data=pe, size=len(pe), filetype="PE"))
print("after a PE file:", "onnxruntime" in sys.modules, det.session_loaded)
"""


def test_onnxruntime_is_imported_only_on_the_first_pe_file(tmp_path: Path) -> None:
    pe = tmp_path / "p.exe"
    pe.write_bytes(small_pe())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", LAZY_SCRIPT, str(tmp_path / "home"), str(MODEL_DIR), str(pe)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "after make_detector: False",
        "after a text file: False",
        "after a PE file: True True",
    ]


# Findings ------------------------------------------------------------------------------


def test_low_thresholds_give_findings_with_scores(tmp_path: Path) -> None:
    th = {"suspicious": 0.0, "malicious": 2.0}
    model_dir = copy_model(tmp_path, lambda m: m.update(thresholds=th))
    warnings: list[str] = []
    det = make_detector(context(model_dir, warnings, tmp_path))
    assert det is not None
    findings = det.scan(pe_object(small_pe()))
    assert len(findings) == 1
    f = findings[0]
    assert f.detector == "ml" and f.name == NAME_SUSPICIOUS
    assert f.severity is Severity.SUSPICIOUS and f.kind is FindingKind.ML
    assert 0.0 <= f.score <= 1.0
    assert f.details["score"] == f.score
    assert f.details["thresholds"] == th
    assert f.details["model_version"] == det.manifest.version
    assert f.to_dict()["details"]["score"] == f.score


def test_malicious_threshold(tmp_path: Path) -> None:
    th = {"suspicious": 0.0, "malicious": 0.0}
    model_dir = copy_model(tmp_path, lambda m: m.update(thresholds=th))
    det = make_detector(context(model_dir, [], tmp_path))
    assert det is not None
    (f,) = det.scan(pe_object(small_pe()))
    assert f.name == NAME_MALICIOUS and f.severity is Severity.MALICIOUS


def test_non_pe_and_unparseable_objects_get_nothing(detector: MLDetector) -> None:
    assert detector.scan(pe_object(small_pe(), filetype="ZIP")) == []
    assert not detector.session_loaded
    assert detector.scan(pe_object(small_pe()[:100])) == []
    assert detector.scan(pe_object(b"MZ" + bytes(10))) == []
    assert not detector.session_loaded


def test_batch_equals_single_scans(tmp_path: Path) -> None:
    model_dir = copy_model(
        tmp_path, lambda m: m.update(thresholds={"suspicious": 0.0, "malicious": 2.0})
    )
    det = make_detector(context(model_dir, [], tmp_path))
    assert det is not None
    objs = [pe_object(small_pe()), pe_object(b"text", filetype="TEXT"), pe_object(small_pe())]
    batch = det.scan_batch(objs)
    assert batch == [det.scan(o) for o in objs]
    assert [len(b) for b in batch] == [1, 0, 1]


def test_threads_share_one_session(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import onnxruntime as ort

    created: list[int] = []
    real = ort.InferenceSession

    def counting(*args: Any, **kwargs: Any) -> Any:
        created.append(1)
        assert kwargs["sess_options"].intra_op_num_threads == 1
        return real(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", counting)
    model_dir = copy_model(
        tmp_path, lambda m: m.update(thresholds={"suspicious": 0.0, "malicious": 2.0})
    )
    det = make_detector(context(model_dir, [], tmp_path))
    assert det is not None
    obj = pe_object(small_pe())
    barrier = threading.Barrier(8)
    scores: list[float] = []
    lock = threading.Lock()

    def work() -> None:
        barrier.wait()
        for _ in range(20):
            (f,) = det.scan(obj)
            with lock:
                scores.append(f.score)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(created) == 1
    assert len(scores) == 160 and len(set(scores)) == 1


# Real files ----------------------------------------------------------------------------


@pytest.mark.skipif(not CORPUS.is_dir(), reason="benign PE corpus not built")
def test_real_benign_pe_from_the_corpus(detector: MLDetector) -> None:
    path = next(iter_pe_files(CORPUS))
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        obj = ScanObject(path=str(path), name=path.name, data=mm, size=len(mm), filetype="PE")
        findings = detector.scan(obj)
        from aegis_engine.ml.features import extract

        feats = extract(mm)
    assert feats.ok
    (score,) = detector.score_vectors([feats.values]) or [None]
    assert score is not None and 0.0 <= score <= 1.0
    assert all(f.kind is FindingKind.ML for f in findings)


def _scan_file(detector: MLDetector, path: Path) -> list[Any]:
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        obj = ScanObject(path=str(path), name=path.name, data=mm, size=len(mm), filetype="PE")
        return detector.scan(obj)


@pytest.mark.skipif(
    not (CORPUS.is_dir() and EXTRA_CORPUS.is_dir()), reason="benign PE corpora not built"
)
def test_held_out_corpus_halves_are_not_flagged(detector: MLDetector) -> None:
    """The model card's figure: no finding on the held-out half of any corpus source (files
    of families no model here was trained on), and every source has a held-out half."""
    entries = index_corpora(CORPUS, EXTRA_CORPUS)
    held_out = [e for e in entries if e.split == "holdout"]
    sources = {e.source for e in entries}
    assert {e.source for e in held_out} == sources
    assert {"wine", "nsis", "mingw", "dotnet", "efi", "python-launchers"} <= sources
    assert len(held_out) > 400
    flagged = [f"{e.source}/{e.path.name}" for e in held_out if _scan_file(detector, e.path)]
    assert flagged == []


def _python_launchers() -> list[Path]:
    """Windows launchers that pip and setuptools install on every platform."""
    import sysconfig

    found: list[Path] = []
    for key in ("purelib", "platlib"):
        root = Path(sysconfig.get_paths()[key])
        for sub in ("setuptools", "pip/_vendor/distlib"):
            found += sorted((root / sub).glob("*.exe"))
    return sorted(set(found))


@pytest.mark.skipif(not _python_launchers(), reason="no setuptools / pip launcher installed")
def test_python_launchers_in_site_packages_are_not_flagged(detector: MLDetector) -> None:
    """Model 1.0.0 flagged setuptools' cli-64.exe, gui.exe, gui-32.exe and gui-64.exe in
    every Python environment; no ML finding on these is the bar now."""
    launchers = _python_launchers()
    assert launchers
    assert [p.name for p in launchers if _scan_file(detector, p)] == []
