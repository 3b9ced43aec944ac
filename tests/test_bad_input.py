"""Hostile and odd input: each case of the issue's list, through the real CLI process."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
import zlib
from pathlib import Path

import pytest
from conftest import EICAR, run_cli

from aegis_engine import Engine, FileReport, Verdict


def _json(out: str) -> tuple[list[dict], dict]:
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    return lines[:-1], lines[-1]["summary"]


def _zip_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def _targz_bytes(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_eicar_plain_and_padded(tmp_path: Path) -> None:
    (tmp_path / "plain.com").write_bytes(EICAR)
    (tmp_path / "padded.com").write_bytes(EICAR + b" \t\r\n\x1a" * 10)
    (tmp_path / "too-long.com").write_bytes(EICAR + b" " * 100)  # 168 bytes > 128
    (tmp_path / "not-first.com").write_bytes(b"x" + EICAR)
    (tmp_path / "trailing-text.com").write_bytes(EICAR + b" hello")
    r = run_cli("scan", "--json", "--no-bundled", str(tmp_path))
    objects, _ = _json(r.stdout)
    found = sorted(Path(o["path"]).name for o in objects)
    assert found == ["padded.com", "plain.com"]
    assert r.returncode == 1


def test_eicar_nested_three_deep(tmp_path: Path) -> None:
    x_zip = _zip_bytes({"eicar.com": EICAR})
    inner = _targz_bytes({"x.zip": x_zip})
    (tmp_path / "outer.zip").write_bytes(_zip_bytes({"inner.tar.gz": inner}))
    r = run_cli("scan", "--json", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    objects, _ = _json(r.stdout)
    paths = [o["path"] for o in objects if o["verdict"] == "malicious"]
    assert f"{tmp_path}/outer.zip!inner.tar.gz!x.zip!eicar.com" in paths
    assert all(o.get("file", o["path"]) == f"{tmp_path}/outer.zip" for o in objects)


def _nested_zip(depth: int) -> bytes:
    data = _zip_bytes({"eicar.com": EICAR})
    for level in range(depth - 1):
        data = _zip_bytes({f"level{level}.zip": data})
    return data


def test_archive_nested_deeper_than_limit(tmp_path: Path) -> None:
    (tmp_path / "deep.zip").write_bytes(_nested_zip(20))
    r = run_cli("scan", "--json", str(tmp_path))
    objects, _ = _json(r.stdout)
    assert r.returncode == 2, r.stdout
    assert any(
        o["verdict"] == "incomplete" and "max-recursion" in " ".join(o["problems"]) for o in objects
    )
    r = run_cli("scan", "--json", "--no-cache", "--max-recursion", "25", str(tmp_path))
    assert r.returncode == 1


def _gzip_of_zeros(path: Path, size: int) -> None:
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)  # gzip container
    block = bytes(1 << 20)
    with path.open("wb") as fh:
        for _ in range(size >> 20):
            fh.write(comp.compress(block))
        fh.write(comp.flush())


def _zip_of_zeros(path: Path, size: int) -> None:
    block = bytes(1 << 20)
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf,
        zf.open("zeros.bin", "w", force_zip64=True) as member,
    ):
        for _ in range(size >> 20):
            member.write(block)


@pytest.mark.parametrize("kind", ["gz", "zip"])
def test_ratio_bomb_is_incomplete_not_inflated(tmp_path: Path, kind: str) -> None:
    bomb = tmp_path / f"bomb.{kind}"
    (_gzip_of_zeros if kind == "gz" else _zip_of_zeros)(bomb, 1 << 30)  # 1 GiB of zeros
    assert bomb.stat().st_size < 8 << 20
    # The scan reports its own peak memory (VmHWM belongs to the process image; rusage's
    # maxrss would include what the forking test process had).
    code = (
        "import sys\n"
        "from aegis_engine.cli import main\n"
        "rc = main(['scan', '--json', sys.argv[1]])\n"
        "hwm = [x for x in open('/proc/self/status') if x.startswith('VmHWM')][0]\n"
        "sys.stderr.write('PEAK ' + hwm.split()[1] + '\\n')\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(bomb)], capture_output=True, text=True, timeout=120
    )
    objects, _ = _json(r.stdout)
    assert r.returncode == 2, r.stdout + r.stderr
    problems = " ".join(p for o in objects for p in o.get("problems", []))
    assert "max-file-size" in problems or "max-scan-size" in problems
    peak_kib = int(r.stderr.rsplit("PEAK ", 1)[1].split()[0])
    assert peak_kib < 400 * 1024  # never held anything close to the inflated size


def _overlapping_zip() -> bytes:
    """A small zip whose central directory lists many entries over the same compressed data."""
    data = _zip_bytes({"a": bytes(10 << 20)})
    cd_start = data.index(b"PK\x01\x02")
    eocd_start = data.rindex(b"PK\x05\x06")
    entry = data[cd_start:eocd_start]
    name_len = struct.unpack("<H", entry[28:30])[0]
    assert name_len == 1
    entries = b"".join(entry[:46] + bytes([ord("a") + i]) + entry[47:] for i in range(20))
    eocd = bytearray(data[eocd_start:])
    struct.pack_into("<HHII", eocd, 8, 20, 20, len(entries), cd_start)
    return data[:cd_start] + entries + bytes(eocd)


def test_overlapping_entry_zip_bomb(tmp_path: Path) -> None:
    (tmp_path / "overlap.zip").write_bytes(_overlapping_zip())
    r = run_cli("scan", "--json", str(tmp_path))
    objects, _ = _json(r.stdout)
    names = [d["name"] for o in objects for d in o["detections"]]
    assert "Heuristics.Archive.OverlappingEntries" in names, r.stdout
    assert r.returncode == 1


def test_member_names_never_decide_where_anything_is_written(tmp_path: Path) -> None:
    scan_dir = tmp_path / "in"
    scan_dir.mkdir()
    names = {"../escape.com": EICAR, "/abs/escape2.com": EICAR, "a/../../escape3.com": EICAR}
    (scan_dir / "evil.zip").write_bytes(_zip_bytes(names))
    (scan_dir / "evil.tar.gz").write_bytes(_targz_bytes(names))
    before = set(tmp_path.rglob("*"))
    r = run_cli("scan", "--json", str(scan_dir))
    assert r.returncode == 1
    objects, _ = _json(r.stdout)
    paths = {o["path"] for o in objects}
    assert f"{scan_dir}/evil.zip!../escape.com" in paths
    assert f"{scan_dir}/evil.tar.gz!/abs/escape2.com" in paths
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/abs/escape2.com").exists()


def test_fifo_and_symlink_to_dev_zero_do_not_hang(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    os.symlink("/dev/zero", tmp_path / "zero")
    os.symlink(tmp_path, tmp_path / "loop")
    (tmp_path / "ok.txt").write_text("fine")
    r = run_cli("scan", "--json", str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert _json(r.stdout)[1]["files"] == 1
    # Following symlinks: still no hang, the loop is detected.
    r = run_cli("scan", "--json", "--no-cache", "--follow-symlinks", str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # A FIFO named on the command line is reported, not opened.
    r = run_cli("scan", "--json", str(tmp_path / "pipe"), timeout=60)
    assert r.returncode == 2


def test_unreadable_file(tmp_path: Path) -> None:
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"x" * 100)
    secret.chmod(0)
    (tmp_path / "ok.txt").write_text("ok")
    cmd = [sys.executable, "-m", "aegis_engine.cli", "scan", "--json", str(tmp_path)]
    if os.geteuid() == 0:
        # Root reads everything: drop the capabilities that bypass file permissions.
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("running as root and setpriv (util-linux) is not available")
        cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stdout + r.stderr
    objects, summary = _json(r.stdout)
    assert [o["path"] for o in objects] == [str(secret)]
    assert objects[0]["verdict"] == "error"
    assert "ermission denied" in objects[0]["problems"][0]
    assert summary["files"] == 2


def test_file_deleted_during_the_walk(tmp_path: Path, aegis_paths) -> None:
    tree = tmp_path / "tree"
    for d in range(4):
        (tree / f"d{d}").mkdir(parents=True)
        for i in range(50):
            (tree / f"d{d}" / f"f{i}.txt").write_text(f"{d}/{i}")
    deleted = threading.Event()

    def on_report(report: FileReport) -> None:
        if not deleted.is_set():
            deleted.set()
            for p in tree.rglob("*.txt"):
                p.unlink(missing_ok=True)

    summary = Engine(aegis_paths).scan([tree], on_report=on_report)
    assert deleted.is_set()
    assert summary.errors == 0 and summary.incomplete == 0 and summary.threats == 0
    assert 1 <= summary.files < 200


def test_non_utf8_file_name(tmp_path: Path) -> None:
    raw = os.fsencode(tmp_path) + b"/caf\xe9-\xff.com"
    fd = os.open(raw, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, EICAR)
    os.close(fd)
    r = run_cli("scan", "--json", str(tmp_path))
    assert r.returncode == 1, r.stdout + r.stderr
    objects, _ = _json(r.stdout)
    assert objects[0]["path"] == f"{tmp_path}/caf\\xe9-\\xff.com"
    human = run_cli("scan", "--no-cache", str(tmp_path))
    assert "caf\\xe9-\\xff.com" in human.stdout


def test_broken_yara_file_beside_good_ones(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good1.yar").write_text(
        'rule Good_One { strings: $a = "AEGIS-TEST-MARKER-ONE" condition: $a }\n'
    )
    (rules / "broken.yar").write_text("rule Broken { strings: $a = condition: }\n")
    (rules / "good2.yara").write_text(
        'rule Good_Two { strings: $a = "AEGIS-TEST-MARKER-TWO" condition: $a }\n'
    )
    target = tmp_path / "target"
    target.mkdir()
    (target / "one.txt").write_text("xx AEGIS-TEST-MARKER-ONE xx")
    (target / "two.txt").write_text("xx AEGIS-TEST-MARKER-TWO xx")
    r = run_cli("scan", "--json", "--rules", str(rules), str(target))
    assert r.returncode == 1, r.stdout + r.stderr
    objects, _ = _json(r.stdout)
    names = sorted(d["name"] for o in objects for d in o["detections"])
    assert names == ["Good_One", "Good_Two"]
    assert "broken.yar" in r.stderr


def test_empty_file(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    r = run_cli("scan", "--json", str(tmp_path))
    assert r.returncode == 0
    assert _json(r.stdout)[1]["files"] == 1


def test_sparse_3gb_file_is_skipped_by_size_limit_and_reported(tmp_path: Path) -> None:
    sparse = tmp_path / "sparse.img"
    with sparse.open("wb") as fh:
        fh.truncate(3 << 30)
    r = run_cli("scan", "--json", str(tmp_path), timeout=60)
    assert r.returncode == 2
    objects, summary = _json(r.stdout)
    assert objects[0]["verdict"] == "incomplete"
    assert "max-file-size" in objects[0]["problems"][0]
    assert summary["bytes"] == 3 << 30


def test_incomplete_is_never_silently_clean(tmp_path: Path, aegis_paths) -> None:
    (tmp_path / "many.zip").write_bytes(_zip_bytes({f"f{i}.txt": b"x" for i in range(30)}))
    engine = Engine(aegis_paths)
    options = engine.default_options(limits=engine.limits.__class__(max_files=10))
    summary = engine.scan([tmp_path], options)
    assert summary.incomplete == 1
    assert summary.reports[0].verdict is Verdict.INCOMPLETE
