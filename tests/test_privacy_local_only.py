"""Nothing Aegis runs writes telemetry or phones home: a scan that loads every detector
(onnxruntime included) writes nothing outside AEGIS_HOME and the scanned folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLAMAV_TESTFILES, EICAR


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_scan_with_the_ml_model_writes_nothing_outside_aegis_home(tmp_path: Path) -> None:
    pe = CLAMAV_TESTFILES / "clam.exe"
    if not pe.is_file():
        pytest.skip("clamav-testfiles not installed (no real PE file to make the model load)")
    home = tmp_path / "home"
    home.mkdir()
    target = tmp_path / "target"
    target.mkdir()
    shutil.copy(pe, target / "program.exe")
    (target / "eicar.com").write_bytes(EICAR)
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local/share"),
        "AEGIS_HOME": str(tmp_path / "aegis"),
        # Files are scanned in worker processes: a test detector there reports whether
        # onnxruntime was loaded when it looked at the PE file.
        "AEGIS_TEST_DETECTORS": "helpers.hostile_detectors:make_probe",
        "PYTHONPATH": str(Path(__file__).resolve().parent),
    }
    env.pop("ORT_DISABLE_TELEMETRY", None)  # Aegis must set it itself
    code = (
        "import sys\n"
        "from aegis_engine.cli import main\n"
        "sys.exit(main(['scan', '--json', sys.argv[1]]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert r.returncode == 1, r.stdout + r.stderr
    assert "onnxruntime-loaded" in r.stdout, "the model was not loaded: the test proves nothing"
    assert _files(home) == set(), f"written outside AEGIS_HOME: {_files(home)}"
    assert _files(target) == {"program.exe", "eicar.com"}
