"""SIGKILL at every step of quarantine and restore: nothing is lost, the next start recovers.

Each case runs the operation in a real child process whose step hook kills the process
with SIGKILL at one step; then a fresh Vault (the "next start") recovers, and the file must
be either at its original place or in the vault - byte-identical, exactly once.
"""

from __future__ import annotations

import base64
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aegis_engine.paths import AegisPaths
from aegis_engine.quarantine import QUARANTINE_STEPS, RESTORE_STEPS, KeyStore, Vault

CHUNK = 4096
DATA = os.urandom(3 * CHUNK + 123)  # four chunks
MODE = 0o751
NAME = os.fsdecode(b"odd name \xff \xc3\xa9.exe")

# The child: the real vault, killed by its own step hook. No keyring is used (the fail
# backend), so the key is in the key file that the parent then reads.
CHILD = r"""
import base64, os, signal, sys
import keyring, keyring.backends.fail
keyring.set_keyring(keyring.backends.fail.Keyring())
from aegis_engine.paths import AegisPaths
from aegis_engine.quarantine import KeyStore, Vault

paths = AegisPaths.default()
step, nth = os.environ["CRASH_STEP"], int(os.environ["CRASH_NTH"])
seen = []

def hook(name):
    if name == step:
        seen.append(name)
        if len(seen) == nth:
            os.kill(os.getpid(), signal.SIGKILL)

keys = KeyStore(paths.quarantine_dir, paths.data_dir / "quarantine.key", warn=lambda m: None)
vault = Vault(paths.quarantine_dir, keys, warn=lambda m: None, step_hook=hook,
              chunk_size=int(os.environ["CRASH_CHUNK"]))
if os.environ["CRASH_OP"] == "quarantine":
    vault.quarantine(os.fsdecode(base64.b64decode(os.environ["CRASH_TARGET"])))
else:
    vault.restore(os.environ["CRASH_ITEM"])
sys.exit(3)  # the kill did not happen
"""


pytestmark = pytest.mark.usefixtures("no_keyring")


def _vault(paths: AegisPaths, notes: list[str]) -> Vault:
    keys = KeyStore(paths.quarantine_dir, paths.data_dir / "quarantine.key", warn=lambda m: None)
    return Vault(paths.quarantine_dir, keys, warn=notes.append, chunk_size=CHUNK)


def _run_child(op: str, step: str, nth: int, *, target: Path | None = None, item: str = "") -> None:
    env = {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "CRASH_OP": op,
        "CRASH_STEP": step,
        "CRASH_NTH": str(nth),
        "CRASH_CHUNK": str(CHUNK),
        "CRASH_TARGET": base64.b64encode(os.fsencode(target)).decode() if target else "",
        "CRASH_ITEM": item,
    }
    proc = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr)


def _cases(steps: tuple[str, ...], op: str) -> list[tuple[str, int]]:
    cases = []
    for step in steps:
        cases.append((step, 1))
        if step == f"{op}:chunk-written":
            cases.append((step, 3))  # in the middle of the content, not only the first chunk
    return cases


def _no_leftovers(paths: AegisPaths, folder: Path) -> None:
    assert os.listdir(paths.quarantine_dir / "journal") == []
    items = os.listdir(paths.quarantine_dir / "items")
    assert all(n.endswith(".aqv") for n in items), items
    assert not [n for n in os.listdir(folder) if n.startswith(".aegis-restore-")]


def _placed(path: Path) -> Path:
    """The test file at ``path``: DATA, with MODE."""
    path.write_bytes(DATA)
    os.chmod(path, MODE)
    return path


def _assert_in_place(path: Path) -> None:
    assert path.read_bytes() == DATA
    assert stat.S_IMODE(os.stat(path).st_mode) == MODE


# Where the file must be after recovery, by the step the crash hit.
QUARANTINE_IN_VAULT_FROM = QUARANTINE_STEPS.index("quarantine:item-committed")
RESTORE_RESTORED_FROM = RESTORE_STEPS.index("restore:linked")


@pytest.mark.parametrize(("step", "nth"), _cases(QUARANTINE_STEPS, "quarantine"))
def test_sigkill_during_quarantine_loses_nothing(
    aegis_paths: AegisPaths, tmp_path: Path, step: str, nth: int
) -> None:
    folder = tmp_path / "downloads"
    folder.mkdir()
    target = _placed(folder / NAME)

    _run_child("quarantine", step, nth, target=target)

    notes: list[str] = []
    vault = _vault(aegis_paths, notes)  # the next start
    recovered = vault.recover()
    _no_leftovers(aegis_paths, folder)
    items = vault.items()
    in_vault = QUARANTINE_STEPS.index(step) >= QUARANTINE_IN_VAULT_FROM
    if in_vault:
        assert not os.path.lexists(target)
        assert len(items) == 1
        assert vault.read_content(items[0].id) == DATA
        restored = Path(vault.restore(items[0].id))
        assert restored == target
        _assert_in_place(target)
    else:
        assert items == []
        _assert_in_place(target)
    journaled = step != "quarantine:journal-removed"
    assert len(recovered) == (1 if journaled else 0), recovered
    if journaled:
        assert ("completed" if in_vault else "rolled back") in recovered[0]


@pytest.mark.parametrize(("step", "nth"), _cases(RESTORE_STEPS, "restore"))
@pytest.mark.parametrize("name_taken", [False, True], ids=["free", "taken"])
def test_sigkill_during_restore_loses_nothing(
    aegis_paths: AegisPaths, tmp_path: Path, step: str, nth: int, name_taken: bool
) -> None:
    folder = tmp_path / "documents"
    folder.mkdir()
    target = _placed(folder / NAME)
    item = _vault(aegis_paths, []).quarantine(target)
    if name_taken:
        target.write_bytes(b"a newer file that must survive")
    expected = folder / (NAME[:-4] + " (restored).exe") if name_taken else target

    _run_child("restore", step, nth, item=item.id)

    notes: list[str] = []
    vault = _vault(aegis_paths, notes)  # the next start
    recovered = vault.recover()
    _no_leftovers(aegis_paths, folder)
    if name_taken:
        assert target.read_bytes() == b"a newer file that must survive"
    restored = RESTORE_STEPS.index(step) >= RESTORE_RESTORED_FROM
    if restored:
        _assert_in_place(expected)
        assert vault.items() == []
    else:
        assert not os.path.lexists(expected)
        assert [i.id for i in vault.items()] == [item.id]
        assert Path(vault.restore(item.id)) == expected
        _assert_in_place(expected)
    journaled = step != "restore:journal-removed"
    assert len(recovered) == (1 if journaled else 0), recovered
    if journaled:
        assert ("completed" if restored else "rolled back") in recovered[0]
    expected_files = {expected.name} | ({target.name} if name_taken else set())
    assert set(os.listdir(folder)) == expected_files


def test_recovery_after_a_crash_when_the_file_changed_meanwhile(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    """Killed after the vault copy was verified; before the next start the user edits the
    file. Recovery must not remove the edited file: it rolls back instead."""
    target = _placed(tmp_path / "x.exe")
    _run_child("quarantine", "quarantine:item-verified", 1, target=target)
    with open(target, "r+b") as fh:  # same inode, new content
        fh.write(b"edited")
    notes: list[str] = []
    vault = _vault(aegis_paths, notes)
    recovered = vault.recover()
    assert "rolled back" in recovered[0] and "changed" in recovered[0]
    assert target.read_bytes().startswith(b"edited")
    assert vault.items() == []


def test_recovery_refuses_a_symlinked_folder_and_keeps_both_copies(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    """Killed after the vault copy was committed; then the folder is swapped for a symlink.
    Recovery must not follow it: the vault keeps its verified copy, nothing is removed."""
    real = tmp_path / "real"
    real.mkdir()
    (real / "x.exe").write_bytes(DATA)
    _run_child("quarantine", "quarantine:item-verified", 1, target=real / "x.exe")
    os.rename(real, tmp_path / "moved")
    (tmp_path / "decoy").mkdir()
    (tmp_path / "decoy" / "x.exe").write_bytes(b"decoy")
    os.symlink(tmp_path / "decoy", real)
    notes: list[str] = []
    vault = _vault(aegis_paths, notes)
    recovered = vault.recover()
    assert "could not be checked safely" in recovered[0]
    assert (tmp_path / "decoy" / "x.exe").read_bytes() == b"decoy"
    assert (tmp_path / "moved" / "x.exe").read_bytes() == DATA
    [item] = vault.items()
    assert vault.read_content(item.id) == DATA


def test_a_damaged_journal_entry_is_moved_aside_once(aegis_paths: AegisPaths) -> None:
    notes: list[str] = []
    vault = _vault(aegis_paths, notes)
    assert vault.items() == []
    journal = aegis_paths.quarantine_dir / "journal"
    journal.mkdir(parents=True)
    (aegis_paths.quarantine_dir / "items").mkdir()
    (journal / "quarantine-00.json").write_bytes(b"{not json")
    assert _vault(aegis_paths, notes).recover() == []
    assert any("damaged" in n for n in notes)
    assert os.listdir(journal) == ["quarantine-00.json.damaged"]
    assert _vault(aegis_paths, notes).recover() == []
    assert os.listdir(journal) == ["quarantine-00.json.damaged"]
