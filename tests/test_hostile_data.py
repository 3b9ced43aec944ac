"""Hostile data files (issue 12, items 5 and 7; issue 11, item 8).

Deeply nested or huge JSON in the consent file, the vault index (``vault.json``) or a journal
record is refused as damaged, never a RecursionError; a settings file that is a FIFO or
``/dev/zero`` is refused by name instead of blocking or reading forever; a truncated vault
item never hides the others; the keyring fallback is said once, when the key file is made.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import EICAR, NO_KEYRING, run_cli

from aegis_engine.bounded_io import (
    NotRegularFile,
    TooLarge,
    load_json_file,
    loads_bounded,
    read_regular_file,
)
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import ConsentStore
from aegis_engine.quarantine import KeyStore, Vault
from aegis_engine.settings import SettingsStore

DEEP = b"[" * 200_000 + b"]" * 200_000
DEEP_OBJECT = b'{"purposes": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_001

pytestmark = pytest.mark.usefixtures("no_leaks", "no_keyring")


# -- the helper ------------------------------------------------------------------------------


def test_loads_bounded_refuses_depth_and_size_but_reads_normal_json() -> None:
    assert loads_bounded(b'{"a": [1, {"b": "[[[[[[ \\" {{{"}]}') == {
        "a": [1, {"b": '[[[[[[ " {{{'}]
    }
    with pytest.raises(ValueError, match="deeper"):
        loads_bounded(DEEP)
    with pytest.raises(ValueError, match="deeper"):
        loads_bounded(b"[" * 65 + b"]" * 65)
    assert loads_bounded(b"[" * 64 + b"]" * 64) is not None
    with pytest.raises(TooLarge):
        loads_bounded(b"[" + b"1," * 100 + b"1]", max_bytes=50)
    with pytest.raises(ValueError):
        loads_bounded(b"\xff\xfe{")


def test_read_regular_file_refuses_fifo_device_and_folder(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # nobody writes to it: a plain open() would block for ever
    for path in (fifo, Path("/dev/zero"), tmp_path):
        with pytest.raises(NotRegularFile, match="not a regular file"):
            read_regular_file(path, 1024)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    with pytest.raises(TooLarge):
        load_json_file(big, max_bytes=1024)


# -- consent, vault index, journal -------------------------------------------------------------


@pytest.mark.parametrize("content", [DEEP, DEEP_OBJECT, b" " * (300 * 1024) + b"{}"])
def test_hostile_consent_file_counts_as_damaged(aegis_paths: AegisPaths, content: bytes) -> None:
    aegis_paths.config_dir.mkdir(parents=True)
    (aegis_paths.config_dir / "consent.json").write_bytes(content)
    seen: list[str] = []
    store = ConsentStore.for_paths(aegis_paths, warn=seen.append)
    assert not store.is_granted("update-checks")  # damaged: everything off
    assert any("damaged" in s for s in seen)
    r = run_cli("consent", "list")
    assert "Traceback" not in r.stderr and "RecursionError" not in r.stderr, r.stderr


def test_consent_file_that_is_a_fifo_is_refused(aegis_paths: AegisPaths) -> None:
    aegis_paths.config_dir.mkdir(parents=True)
    os.mkfifo(aegis_paths.config_dir / "consent.json")
    seen: list[str] = []
    assert not ConsentStore.for_paths(aegis_paths, warn=seen.append).is_granted("update-checks")
    assert any("not a regular file" in s for s in seen), seen


def test_deep_vault_index_is_a_clear_error(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    aegis_paths.quarantine_dir.mkdir(parents=True)
    (aegis_paths.quarantine_dir / "vault.json").write_bytes(b"[" * 5000 + b"]" * 5000)
    (tmp_path / "e.com").write_bytes(EICAR)
    r = run_cli("scan", "--json", "--quarantine", str(tmp_path), env=NO_KEYRING)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1  # still reported, and counted
    assert "vault.json" in r.stdout  # the reason it could not be quarantined
    r = run_cli("quarantine", "list", env=NO_KEYRING)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "vault.json" in r.stderr and "deeper" in r.stderr
    status = KeyStore(aegis_paths.quarantine_dir, tmp_path / "k", warn=print).status()
    assert status.where == "unknown" and status.warning and "vault.json" in status.warning


def test_deep_journal_record_is_moved_aside(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    notes: list[str] = []
    vault = Vault.for_paths(aegis_paths, warn=notes.append)
    (tmp_path / "e.com").write_bytes(EICAR)
    vault.quarantine(str(tmp_path / "e.com"))
    journal = aegis_paths.quarantine_dir / "journal"
    (journal / "quarantine-ff.json").write_bytes(DEEP)
    os.mkfifo(journal / "restore-ee.json")
    again = Vault.for_paths(aegis_paths, warn=notes.append)
    assert again.recover() == []
    assert sorted(os.listdir(journal)) == ["quarantine-ff.json.damaged", "restore-ee.json.damaged"]
    assert len(again.items()) == 1


# -- settings that are not files --------------------------------------------------------------


@pytest.mark.parametrize("kind", ["fifo", "device", "folder", "huge"])
def test_settings_path_that_is_not_a_file_is_refused_by_name(
    aegis_paths: AegisPaths, tmp_path: Path, kind: str
) -> None:
    settings = aegis_paths.settings_file
    settings.parent.mkdir(parents=True)
    if kind == "fifo":
        os.mkfifo(settings)
    elif kind == "device":
        settings.symlink_to("/dev/zero")
    elif kind == "folder":
        settings.mkdir()
    else:
        settings.write_bytes(b"# " + b"x" * (2 * 1024 * 1024) + b"\n")
    problems = SettingsStore(settings).current.problems
    assert problems and all(str(settings) in p for p in problems), problems
    (tmp_path / "a.txt").write_text("x")
    r = run_cli("scan", str(tmp_path), timeout=60)
    # the scan itself is complete (with the default settings): a warning, not an error
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert str(settings) in r.stderr
    if kind != "huge":
        assert "not a regular file" in r.stderr


# -- the vault lists what it can --------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 10, 100, -5])
def test_truncated_vault_item_never_hides_the_others(
    aegis_paths: AegisPaths, tmp_path: Path, size: int
) -> None:
    vault = Vault.for_paths(aegis_paths, warn=lambda m: None)
    ids = []
    for n in range(3):
        (tmp_path / f"e{n}.com").write_bytes(EICAR)
        ids.append(vault.quarantine(str(tmp_path / f"e{n}.com")).id)
    damaged = aegis_paths.quarantine_dir / "items" / f"{ids[1]}.aqv"
    full = damaged.stat().st_size
    os.truncate(damaged, size if size >= 0 else full + size)
    listing = Vault.for_paths(aegis_paths, warn=lambda m: None).listing()
    assert sorted(it.id for it in listing.items) == sorted([ids[0], ids[2]])
    assert [u.id for u in listing.unreadable] == [ids[1]]
    r = run_cli("quarantine", "list", env=NO_KEYRING)
    assert r.returncode == 2, r.stderr
    assert ids[0] in r.stdout and ids[2] in r.stdout and ids[1] in r.stdout
    assert "cannot be read" in r.stdout and "empty" not in r.stdout
    assert r.stderr.count(ids[1]) == 1  # named once, even though the purge listed it too
    r = run_cli("quarantine", "list", "--json", env=NO_KEYRING)
    assert {d["id"] for d in json.loads(r.stdout)} == {ids[0], ids[2]}


# -- the keyring fallback is said once --------------------------------------------------------


def test_keyring_fallback_warning_is_said_once(tmp_path: Path) -> None:
    for n in range(2):
        folder = tmp_path / f"t{n}"
        folder.mkdir()
        (folder / "e.com").write_bytes(EICAR)
    r = run_cli("scan", "--quarantine", "--json", str(tmp_path / "t0"), env=NO_KEYRING)
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("warning") == 1, r.stderr  # said when the key file is made
    assert "no usable OS keyring" in r.stderr
    r = run_cli("scan", "--quarantine", "--json", str(tmp_path / "t1"), env=NO_KEYRING)
    assert r.returncode == 1 and "keyring" not in r.stderr, r.stderr
    r = run_cli("quarantine", "list", env=NO_KEYRING)
    assert r.returncode == 0 and "keyring" not in r.stderr, r.stderr


@pytest.mark.parametrize("content", ["deep", "fifo"])
def test_status_with_a_hostile_vault_index(aegis_paths: AegisPaths, content: str) -> None:
    """``aegis status`` reads vault.json bounded: a deep one (RecursionError before) or a
    FIFO (a hang before) is a warning line, never a traceback."""
    aegis_paths.quarantine_dir.mkdir(parents=True)
    index = aegis_paths.quarantine_dir / "vault.json"
    if content == "fifo":
        os.mkfifo(index)
    else:
        index.write_bytes(b"[" * 5000 + b"]" * 5000)
    r = run_cli("status", timeout=60)
    assert "Traceback" not in r.stderr and "unexpected" not in r.stderr, r.stderr
    assert "vault.json" in r.stdout + r.stderr
