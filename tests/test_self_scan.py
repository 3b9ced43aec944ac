"""Aegis never flags itself (issue 11 item 1, issue 12 item 2).

After a scan that compiled the rules (and cached them) and a ``scan --quarantine`` that
filled the vault and the history, scanning Aegis's own folders, a copy of the whole profile
somewhere else, and a copy of the bundled ``resources/`` finds nothing: what Aegis stores
holds nothing a rule can match, wherever it is copied (the compiled-rules cache is sealed,
the vault is encrypted, the bundled rule sources do not match themselves).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import CLAMAV_TESTFILES, EICAR, NO_KEYRING, run_cli

from aegis_engine.paths import AegisPaths

REPO = Path(__file__).resolve().parents[1]


def scan_json(*targets: Path) -> tuple[int, list[dict[str, object]], str]:
    r = run_cli("scan", "--json", *map(str, targets), env=NO_KEYRING, timeout=600)
    reports = [json.loads(line) for line in r.stdout.splitlines() if line.startswith("{")]
    return r.returncode, reports, r.stderr


def not_clean(reports: list[dict[str, object]]) -> list[object]:
    return [
        (r.get("path"), r.get("verdict"), r.get("findings"))
        for r in reports
        if r.get("verdict") not in (None, "clean")
    ]


@pytest.fixture
def infected(tmp_path: Path) -> Path:
    folder = tmp_path / "infected"
    folder.mkdir()
    (folder / "eicar.com").write_bytes(EICAR)
    clam = CLAMAV_TESTFILES / "clam.exe"
    if clam.is_file():
        shutil.copy(clam, folder / "clam.exe")  # matched by a bundled YARA rule
    return folder


def test_aegis_finds_nothing_in_its_own_data_wherever_copied(
    tmp_path: Path, aegis_paths: AegisPaths, infected: Path
) -> None:
    code, reports, err = scan_json(infected)
    assert code == 1, err
    assert len(not_clean(reports)) == len(list(infected.iterdir()))
    code, reports, err = scan_json(infected)  # second run: rules from the sealed cache
    assert code == 1, err
    assert any(aegis_paths.compiled_rules_dir.glob("*.yarc"))
    r = run_cli("scan", "--quarantine", str(infected), env=NO_KEYRING, timeout=600)
    assert r.returncode == 1, r.stderr
    assert not any(infected.iterdir()), "the threats were moved to the quarantine"
    assert any(p.is_file() for p in aegis_paths.quarantine_dir.rglob("*"))

    profile = aegis_paths.config_dir.parent
    copy = tmp_path / "profile-copy"
    shutil.copytree(profile, copy)
    resources = tmp_path / "resources-copy"
    shutil.copytree(REPO / "resources", resources)
    for target in (
        aegis_paths.cache_dir,
        aegis_paths.data_dir,
        aegis_paths.config_dir,
        copy,
        resources,
    ):
        code, reports, err = scan_json(target)
        assert not_clean(reports) == [], target
        assert code == 0, f"{target}: exit {code}\n{err}"
