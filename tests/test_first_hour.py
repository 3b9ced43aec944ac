"""What a new user meets in the first hour (issue 11 items 4-7, 9, 10): private files,
a refused export to a missing folder, --version and status, readable sizes, progress
without a TTY, and one true sentence about update checks."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from conftest import EICAR, NO_KEYRING, run_cli

from aegis_engine.paths import AegisPaths


def test_every_profile_file_is_private_after_a_scan(
    tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "eicar.com").write_bytes(EICAR)
    r = run_cli("scan", str(tmp_path / "t"), env=NO_KEYRING)
    assert r.returncode == 1, r.stderr
    root = aegis_paths.config_dir.parent
    files = [p for p in root.rglob("*") if p.is_file()]
    assert aegis_paths.scan_cache_file in files
    loose = {str(p): oct(p.stat().st_mode & 0o777) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}


def test_a_scan_cache_made_world_readable_is_made_private_again(
    tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "clean.txt").write_text("hello")
    assert run_cli("scan", str(tmp_path / "t")).returncode == 0
    aegis_paths.scan_cache_file.chmod(0o644)
    assert run_cli("scan", str(tmp_path / "t")).returncode == 0
    assert stat.S_IMODE(aegis_paths.scan_cache_file.stat().st_mode) == 0o600


def test_version_comes_from_the_package_metadata_with_the_signature_version() -> None:
    from importlib import metadata

    r = run_cli("--version")
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip()
    assert line.startswith(f"aegis {metadata.version('aegis')} (signatures ")
    assert "bundled" in line


def test_status_reports_versions_locations_and_key_and_creates_nothing(
    tmp_path: Path, aegis_paths: AegisPaths
) -> None:
    root = aegis_paths.config_dir.parent
    before = sorted(root.rglob("*"))
    r = run_cli("status", "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert sorted(root.rglob("*")) == before, "status creates nothing"
    assert status["version"] == run_cli("--version").stdout.split()[1]
    assert len(status["signatures"]) == 12 and status["content"] == "bundled"
    assert status["locations"]["quarantine"] == str(aegis_paths.quarantine_dir)
    assert status["vault_key"] == "not created yet" and status["warnings"] == []

    # The key kept in a file (no usable keyring) is a warning that stays visible here.
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "eicar.com").write_bytes(EICAR)
    r = run_cli("scan", "--quarantine", str(tmp_path / "t"), env=NO_KEYRING)
    assert r.returncode == 1, r.stderr
    status = json.loads(run_cli("status", "--json").stdout)
    assert status["vault_key"] == "file"
    assert any("quarantine key is kept in a file" in w for w in status["warnings"])
    human = run_cli("status").stdout
    assert "quarantine key: file" in human and "warnings:" in human


def test_limit_messages_print_sizes_as_people_read_them(tmp_path: Path) -> None:
    import zipfile

    from aegis_engine.display import human_size, readable_sizes

    assert human_size(104857600) == "100 MiB" and human_size(199603328) == "190.4 MiB"
    assert human_size(512) == "512 bytes"
    assert (
        readable_sizes("max-file-size: 199603328 bytes is over the limit of 104857600")
        == "max-file-size: 190.4 MiB is over the limit of 100 MiB"
    )
    (tmp_path / "t").mkdir()
    (tmp_path / "t" / "big.bin").write_bytes(b"\0" * (3 * 1024 * 1024 + 300 * 1024))
    with zipfile.ZipFile(tmp_path / "t" / "a.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("member.bin", b"\0" * (3 * 1024 * 1024))
    r = run_cli("scan", "--max-filesize", "2M", "--no-cache", str(tmp_path / "t"))
    assert "max-file-size: 3.3 MiB is over the limit of 2 MiB" in r.stdout, r.stdout
    assert "member declares 3 MiB (limit 2 MiB)" in r.stdout, r.stdout
    assert " bytes" not in r.stdout.split("SCAN SUMMARY")[0]


def test_progress_without_a_tty_prints_plain_lines_when_asked(tmp_path: Path) -> None:
    folder = tmp_path / "t"
    folder.mkdir()
    for i in range(50):
        (folder / f"f{i}.txt").write_text(f"file {i}")
    quiet = run_cli("scan", "--no-cache", str(folder))
    assert quiet.returncode == 0 and "Scanning:" not in quiet.stderr  # unchanged default
    r = run_cli("scan", "--progress", "--no-cache", str(folder))
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("Scanning: ")]
    assert lines, r.stderr
    assert "\r" not in r.stderr and "\x1b" not in r.stderr  # one plain line each
    assert "files" in lines[0] and "threats" in lines[0]
    # --progress works with --json too: stdout stays pure JSON
    r = run_cli("scan", "--progress", "--json", "--no-cache", str(folder))
    assert [json.loads(ln) for ln in r.stdout.splitlines()]
    assert any(ln.startswith("Scanning: ") for ln in r.stderr.splitlines())


def test_readme_and_consent_list_say_the_same_true_thing_about_defaults() -> None:
    from aegis_engine.privacy import DEFAULTS_SENTENCE

    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text().split())
    assert DEFAULTS_SENTENCE in readme
    assert "everything is off by default" not in readme.lower()
    r = run_cli("consent", "list")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == DEFAULTS_SENTENCE
    assert lines[1].split()[:2] == ["update-checks", "on*"]
