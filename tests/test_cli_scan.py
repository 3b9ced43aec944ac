"""The `aegis scan` contract that later issues and external checks rely on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import EICAR, run_cli


def _json_lines(out: str) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert "summary" in lines[-1], out
    return lines[:-1], lines[-1]["summary"]


def test_clean_folder_exits_0(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
    r = run_cli("scan", "--json", str(tmp_path))
    assert r.returncode == 0, r.stderr
    objects, summary = _json_lines(r.stdout)
    assert objects == []
    assert summary["files"] == 2
    assert summary["bytes"] == 5 + 2560
    assert summary["threats"] == 0 and summary["errors"] == 0
    assert isinstance(summary["seconds"], float)


def test_eicar_exits_1_with_json_fields(tmp_path: Path) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    (tmp_path / "clean.txt").write_text("nothing here")
    r = run_cli("scan", "--json", str(tmp_path))
    assert r.returncode == 1, r.stderr
    objects, summary = _json_lines(r.stdout)
    assert len(objects) == 1
    obj = objects[0]
    assert obj["path"] == str(tmp_path / "eicar.com")
    assert obj["verdict"] == "malicious"
    assert obj["sha256"] == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    det = obj["detections"][0]
    assert {"detector", "name", "score"} <= det.keys()
    assert det["detector"] == "eicar"
    assert summary["threats"] == 1 and summary["files"] == 2


def test_human_output_has_findings_and_summary(tmp_path: Path) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    r = run_cli("scan", str(tmp_path))
    assert r.returncode == 1
    assert "MALICIOUS" in r.stdout and "EICAR-Test-File" in r.stdout
    assert "Threats found:     1" in r.stdout


def test_missing_path_exits_2(tmp_path: Path) -> None:
    r = run_cli("scan", "--json", str(tmp_path / "nope"))
    assert r.returncode == 2
    objects, summary = _json_lines(r.stdout)
    assert objects[0]["verdict"] == "error"
    assert summary["errors"] == 1 and summary["files"] == 0


def test_threat_wins_over_problems(tmp_path: Path) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    r = run_cli("scan", "--json", str(tmp_path), str(tmp_path / "missing"))
    assert r.returncode == 1


def test_extra_hash_list_and_allowlist(tmp_path: Path) -> None:
    sample = tmp_path / "scan" / "tool.bin"
    sample.parent.mkdir()
    sample.write_bytes(b"a perfectly ordinary tool" * 40)
    import hashlib

    digest = hashlib.sha256(sample.read_bytes()).hexdigest()
    md5 = hashlib.md5(sample.read_bytes()).hexdigest()
    block = tmp_path / "mine.hsb"
    block.write_text(f"{digest}:{sample.stat().st_size}:Test.Block.Sha256\n")
    r = run_cli("scan", "--json", "--hashes", str(block), str(sample.parent))
    assert r.returncode == 1
    objects, _ = _json_lines(r.stdout)
    assert objects[0]["detections"][0] == {
        **objects[0]["detections"][0],
        "detector": "hashes",
        "name": "Test.Block.Sha256",
    }

    md5_list = tmp_path / "mine.hdb"
    md5_list.write_text(f"{md5}:*:Test.Block.Md5\n")
    r = run_cli("scan", "--json", "--no-cache", "--hashes", str(md5_list), str(sample.parent))
    assert r.returncode == 1
    assert "Test.Block.Md5" in r.stdout

    allow = tmp_path / "mine.sfp"
    allow.write_text(f"{digest}:*:Known.Good\n")
    r = run_cli(
        "scan",
        "--json",
        "--no-cache",
        "--hashes",
        str(block),
        "--hashes",
        str(allow),
        str(sample.parent),
    )
    assert r.returncode == 0, r.stdout


def test_cache_skips_unchanged_and_rescans_changed(tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    for i in range(5):
        (target / f"f{i}.txt").write_text(f"file {i}")
    first = _json_lines(run_cli("scan", "--json", str(target)).stdout)[1]
    assert first["cached"] == 0
    second = _json_lines(run_cli("scan", "--json", str(target)).stdout)[1]
    assert second["cached"] == 5
    (target / "f0.txt").write_bytes(EICAR)
    r = run_cli("scan", "--json", str(target))
    objects, third = _json_lines(r.stdout)
    assert r.returncode == 1 and third["cached"] == 4
    # A cached detection is still reported as a detection.
    r = run_cli("scan", "--json", str(target))
    objects, fourth = _json_lines(r.stdout)
    assert r.returncode == 1 and fourth["cached"] == 5 and objects[0]["verdict"] == "malicious"
    no_cache = _json_lines(run_cli("scan", "--json", "--no-cache", str(target)).stdout)[1]
    assert no_cache["cached"] == 0


def test_exclude_glob(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("x")
    (tmp_path / "skip").mkdir()
    (tmp_path / "skip" / "eicar.com").write_bytes(EICAR)
    (tmp_path / "other.com").write_bytes(EICAR)
    r = run_cli("scan", "--json", "--exclude", "skip", "--exclude", "*.com", str(tmp_path))
    assert r.returncode == 0, r.stdout
    assert _json_lines(r.stdout)[1]["files"] == 1


def test_jobs_option_and_bad_values(tmp_path: Path) -> None:
    (tmp_path / "eicar.com").write_bytes(EICAR)
    assert run_cli("scan", "--jobs", "1", str(tmp_path)).returncode == 1
    r = run_cli("scan", "--jobs", "-1", str(tmp_path))
    assert r.returncode == 2 and "jobs" in r.stderr
    r = run_cli("scan", "--rules", str(tmp_path / "missing.yar"), str(tmp_path))
    assert r.returncode == 2 and "missing.yar" in r.stderr


def test_importing_engine_loads_no_qt() -> None:
    code = (
        "import sys, aegis_engine, aegis_engine.cli, aegis_engine.engine\n"
        "from aegis_engine import Engine\n"
        "bad = [m for m in sys.modules if m.startswith(('PySide6', 'shiboken6', 'aegis_gui'))]\n"
        "heavy = [m for m in sys.modules if m.startswith('onnxruntime')]\n"
        "print(bad, heavy)\n"
        "sys.exit(1 if bad or heavy else 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
