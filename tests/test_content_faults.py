"""One bad content file never disables the others (issue 12, items 5 and 6).

An unreadable ``--hashes`` list or a broken rule file is skipped with a warning naming it;
every other list (the bundled ones included) keeps detecting; a scan that found nothing ends
with exit 2, never a silent 0. Inputs that are not regular files (FIFO, device, folder) are
refused by name and never read. (A path given on the command line that does not exist at
all is a usage error, refused before the scan: see test_cli_scan.py.)
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
from conftest import CLAMAV_TESTFILES, EICAR, run_cli

GENERATED = b"generated sample content that a user hash list blocks\n" * 3

pytestmark = pytest.mark.usefixtures("no_leaks")


def _lists(tmp_path: Path) -> tuple[Path, list[tuple[str, Path]]]:
    good = tmp_path / "good.hsb"
    good.write_text(f"{hashlib.sha256(GENERATED).hexdigest()}:{len(GENERATED)}:User.Blocked\n")
    folder = tmp_path / "folder.hdb"
    folder.mkdir()
    fifo = tmp_path / "fifo.hdb"
    os.mkfifo(fifo)
    zero = tmp_path / "zero.hsb"
    zero.symlink_to("/dev/zero")
    bad = [("folder", folder), ("fifo", fifo), ("device", zero)]
    return good, bad


@pytest.mark.parametrize("kind", ["folder", "fifo", "device"])
def test_bad_hash_list_is_skipped_and_others_detect(tmp_path: Path, kind: str) -> None:
    good, bad = _lists(tmp_path)
    bad_path = dict(bad)[kind]
    target = tmp_path / "scan"
    target.mkdir()
    (target / "sample.bin").write_bytes(GENERATED)
    r = run_cli(
        "scan",
        "--json",
        "--hashes",
        str(bad_path),
        "--hashes",
        str(good),
        str(target),
        timeout=120,
    )
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "User.Blocked" in r.stdout
    assert bad_path.name in r.stderr and "skipped" in r.stderr


def test_bad_hash_list_on_clean_tree_exits_2(tmp_path: Path) -> None:
    _, bad = _lists(tmp_path)
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.txt").write_text("hello")
    r = run_cli("scan", "--json", "--hashes", str(dict(bad)["fifo"]), str(clean), timeout=120)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "fifo.hdb" in r.stderr and "not a regular file" in r.stderr
    summary = json.loads(r.stdout.splitlines()[-1])["summary"]
    assert summary["threats"] == 0


@pytest.mark.skipif(not CLAMAV_TESTFILES.is_dir(), reason="clamav-testfiles not installed")
def test_bad_user_list_keeps_the_bundled_lists(tmp_path: Path) -> None:
    _, bad = _lists(tmp_path)
    target = tmp_path / "scan"
    target.mkdir()
    (target / "clam.exe").write_bytes((CLAMAV_TESTFILES / "clam.exe").read_bytes())
    r = run_cli("scan", "--json", "--hashes", str(dict(bad)["folder"]), str(target))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "Aegis.TestFile.ClamAV.clam" in r.stdout


def test_broken_rule_file_on_clean_tree_exits_2_and_others_detect(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yar"
    broken.write_text("rule broken {\n")
    good = tmp_path / "good.yar"
    good.write_text('rule User_Rule { strings: $a = "generated sample content" condition: $a }\n')
    clean = tmp_path / "clean"
    clean.mkdir()
    (clean / "a.txt").write_text("hello")
    r = run_cli("scan", "--rules", str(broken), "--rules", str(good), str(clean))
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert "broken.yar" in r.stderr
    infected = tmp_path / "infected"
    infected.mkdir()
    (infected / "sample.bin").write_bytes(GENERATED)
    (infected / "eicar.com").write_bytes(EICAR)
    r = run_cli("scan", "--json", "--rules", str(broken), "--rules", str(good), str(infected))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "User_Rule" in r.stdout and "EICAR-Test-File" in r.stdout
