"""The quarantine vault: round trips, encryption, safe paths, keys, purge, responder."""

from __future__ import annotations

import errno
import json
import os
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import keyring.backends.fail
import keyring.backends.null
import pytest
from conftest import EICAR
from keyring.backend import KeyringBackend

from aegis_engine.decision import Action, DecisionEngine, Policy
from aegis_engine.errors import (
    ConfigError,
    ItemNotFound,
    KeyStoreError,
    QuarantineError,
    UnsafePathError,
    VaultIntegrityError,
)
from aegis_engine.history import History
from aegis_engine.paths import AegisPaths
from aegis_engine.quarantine import (
    QUARANTINE_STEPS,
    RESTORE_STEPS,
    FileIdentity,
    QuarantineSettings,
    Vault,
    safe_fs,
)
from aegis_engine.response import Mode, OutcomeService
from aegis_engine.results import FileReport, Finding, FindingKind, ObjectResult, Severity, Verdict
from tests.e2e_gui.helpers import MemoryKeyring


class BrokenKeyring(MemoryKeyring):
    def set_password(self, service: str, username: str, password: str) -> None:
        raise keyring.errors.PasswordSetError("the keyring is locked")


pytestmark = pytest.mark.usefixtures("memory_keyring")  # tests never touch the real keyring


@pytest.fixture
def warnings_seen() -> list[str]:
    return []


@pytest.fixture
def vault(
    aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, warnings_seen: list[str]
) -> Vault:
    return Vault.for_paths(aegis_paths, warn=warnings_seen.append, keyring_backend=memory_keyring)


def make(path: Path, data: bytes, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


# --- round trips ----------------------------------------------------------------------------

ODD_NAMES = [
    "plain.exe",
    "with spaces and (parens).doc",
    "naïve-résumé-日本語.pdf",
    os.fsdecode(b"not-utf8-\xff\xfe-\x80.bin"),
    ".hidden",
    "no_extension",
]


@pytest.mark.parametrize("name", ODD_NAMES)
@pytest.mark.parametrize("mode", [0o644, 0o755, 0o400, 0o4750])
def test_round_trip_odd_names_and_modes(vault: Vault, tmp_path: Path, name: str, mode: int) -> None:
    data = os.urandom(3000) + EICAR
    folder = tmp_path / "dir with space é"
    target = make(folder / name, data, mode)
    mtime_ns = 1_600_000_000_123_456_789
    os.utime(target, ns=(1_600_000_000_000_000_000, mtime_ns))
    before = os.stat(target)

    item = vault.quarantine(target, identity=FileIdentity.of(before))
    assert not os.path.lexists(target)
    assert item.original_path == str(target)
    assert item.size == len(data) and stat.S_IMODE(item.mode) == mode
    assert item.uid == before.st_uid and item.mtime_ns == mtime_ns

    listed = vault.items()
    assert [i.id for i in listed] == [item.id]
    public = listed[0].to_public_dict()
    assert public["path"] == os.fsencode(str(target)).decode("utf-8", "backslashreplace")
    assert os.fsdecode(__import__("base64").b64decode(public["path_b64"])) == str(target)
    json.dumps(public)  # always serializable, even for non-UTF-8 names

    restored = vault.restore(item.id)
    assert restored == str(target)
    assert Path(restored).read_bytes() == data
    after = os.stat(restored)
    assert stat.S_IMODE(after.st_mode) == mode
    assert after.st_mtime_ns == mtime_ns
    assert vault.items() == []


@pytest.mark.parametrize("size", [0, 1, 1024, 4096, 4097, 3 * 4096])
def test_round_trip_sizes_across_chunks(
    aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path, size: int
) -> None:
    vault = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring)
    vault._chunk_size = 4096  # many chunks, edge cases at chunk boundaries
    data = os.urandom(size)
    target = make(tmp_path / "f.bin", data)
    item = vault.quarantine(target)
    assert vault.read_content(item.id) == data
    assert Path(vault.restore(item.id)).read_bytes() == data


def test_vault_holds_no_plaintext(vault: Vault, aegis_home: Path, tmp_path: Path) -> None:
    target = make(tmp_path / "eicar.com", EICAR, 0o755)
    item = vault.quarantine(target)
    assert not target.exists()
    files = [Path(root) / n for root, _, names in os.walk(aegis_home) for n in names]
    assert any(p.name == f"{item.id}.aqv" for p in files)
    for p in files:
        assert EICAR not in p.read_bytes(), f"plaintext in {p}"
        assert EICAR[:20] not in p.read_bytes(), f"plaintext in {p}"
    item_file = vault.items_dir / f"{item.id}.aqv"
    assert stat.S_IMODE(item_file.stat().st_mode) == 0o600  # never executable
    for p in files:
        if vault.root in p.parents:
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert stat.S_IMODE(vault.items_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE(vault.root.stat().st_mode) == 0o700
    # metadata is encrypted too: the original name is nowhere in the vault
    for p in files:
        assert b"eicar.com" not in p.read_bytes()


def test_list_json_fields(vault: Vault, tmp_path: Path) -> None:
    finding = Finding("eicar", "EICAR-Test-File", Severity.MALICIOUS)
    item = vault.quarantine(
        make(tmp_path / "e.com", EICAR),
        detections=[finding.to_dict()],
        explanation=["EICAR-Test-File: signature"],
    )
    public = vault.get(item.id[:6]).to_public_dict()
    assert {"id", "path", "sha256", "detections", "quarantined_at"} <= public.keys()
    assert public["sha256"] == "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    assert public["detections"][0]["name"] == "EICAR-Test-File"
    assert public["explanation"] == ["EICAR-Test-File: signature"]
    assert public["quarantined_at"].endswith("Z")


# --- restore never overwrites -----------------------------------------------------------------


def test_restore_never_overwrites(vault: Vault, tmp_path: Path) -> None:
    target = make(tmp_path / "report.pdf", b"quarantined content")
    first = vault.quarantine(target)
    make(target, b"a new file with the same name")
    restored = vault.restore(first.id)
    assert restored == str(tmp_path / "report (restored).pdf")
    assert target.read_bytes() == b"a new file with the same name"
    assert Path(restored).read_bytes() == b"quarantined content"

    second = vault.quarantine(make(tmp_path / "other.bin", b"two"))
    os.rename(tmp_path / "report.pdf", tmp_path / "other.bin")
    (tmp_path / "other (restored).bin").write_bytes(b"taken too")
    assert vault.restore(second.id) == str(tmp_path / "other (restored 2).bin")
    assert (tmp_path / "other (restored).bin").read_bytes() == b"taken too"


def test_restore_does_not_follow_a_symlink_at_the_target_name(vault: Vault, tmp_path: Path) -> None:
    victim = make(tmp_path / "elsewhere" / "victim.txt", b"must stay")
    target = make(tmp_path / "a" / "f.txt", b"payload")
    item = vault.quarantine(target)
    os.symlink(victim, target)  # the name now points elsewhere
    restored = vault.restore(item.id)
    assert restored == str(tmp_path / "a" / "f (restored).txt")
    assert victim.read_bytes() == b"must stay"
    assert os.path.islink(target)


def test_restore_to_folder(vault: Vault, tmp_path: Path) -> None:
    item = vault.quarantine(make(tmp_path / "src" / "x.txt", b"x"))
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "x.txt").write_bytes(b"existing")
    restored = vault.restore(item.id, to_dir=dest)
    assert restored == str(dest / "x (restored).txt")
    assert (dest / "x.txt").read_bytes() == b"existing"


def test_restore_when_original_folder_is_gone(vault: Vault, tmp_path: Path) -> None:
    item = vault.quarantine(make(tmp_path / "gone" / "x.txt", b"x"))
    (tmp_path / "gone").rmdir()
    with pytest.raises(QuarantineError, match="--to DIR"):
        vault.restore(item.id)
    assert vault.get(item.id).id == item.id  # still safe in the vault
    with pytest.raises(QuarantineError, match="does not exist"):
        vault.restore(item.id, to_dir=tmp_path / "nope")


def test_restore_without_hard_links_uses_an_atomic_no_replace_rename(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    item = vault.quarantine(make(tmp_path / "x.txt", b"content"))
    make(tmp_path / "x.txt", b"newer")
    monkeypatch.setattr(os, "link", no_links)
    restored = vault.restore(item.id)
    assert Path(restored).read_bytes() == b"content"
    assert (tmp_path / "x.txt").read_bytes() == b"newer"
    assert sorted(os.listdir(tmp_path)) == ["x (restored).txt", "x.txt"]


def test_rename_noreplace_refuses_to_replace(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a")
    (tmp_path / "b").write_bytes(b"b")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(FileExistsError):
            safe_fs._rename_noreplace(fd, "a", "b")
    finally:
        os.close(fd)
    assert (tmp_path / "b").read_bytes() == b"b"


# --- symlinks and swapped files ---------------------------------------------------------------


def test_quarantine_refuses_a_symlink_in_place_of_the_file(vault: Vault, tmp_path: Path) -> None:
    precious = make(tmp_path / "precious.txt", b"do not touch")
    scanned = make(tmp_path / "scanned.exe", EICAR)
    identity = FileIdentity.of(os.stat(scanned))
    scanned.unlink()
    os.symlink(precious, scanned)  # swapped in after the scan
    with pytest.raises(UnsafePathError, match="symbolic link"):
        vault.quarantine(scanned, identity=identity)
    assert precious.read_bytes() == b"do not touch"
    assert os.path.islink(scanned)
    assert vault.items() == []


def test_quarantine_refuses_a_symlinked_parent_folder(vault: Vault, tmp_path: Path) -> None:
    real = tmp_path / "downloads"
    make(real / "x.exe", EICAR)
    protected = make(tmp_path / "system" / "x.exe", b"system file")
    identity = FileIdentity.of(os.stat(real / "x.exe"))
    os.rename(real, tmp_path / "moved-away")
    os.symlink(tmp_path / "system", real)  # the folder is now a symlink to another place
    with pytest.raises(UnsafePathError, match="symbolic link"):
        vault.quarantine(real / "x.exe", identity=identity)
    assert protected.read_bytes() == b"system file"
    assert (tmp_path / "moved-away" / "x.exe").read_bytes() == EICAR
    assert vault.items() == []


def test_quarantine_refuses_a_symlink_higher_up(vault: Vault, tmp_path: Path) -> None:
    make(tmp_path / "real" / "deep" / "x.exe", EICAR)
    os.symlink(tmp_path / "real", tmp_path / "link")
    with pytest.raises(UnsafePathError, match=str(tmp_path / "link")):
        vault.quarantine(tmp_path / "link" / "deep" / "x.exe")
    assert (tmp_path / "real" / "deep" / "x.exe").exists()


def test_quarantine_refuses_a_different_file_than_scanned(vault: Vault, tmp_path: Path) -> None:
    target = make(tmp_path / "x.exe", EICAR)
    identity = FileIdentity.of(os.stat(target))
    target.unlink()
    make(tmp_path / "keep-inode-busy", b"")
    make(target, b"an innocent replacement")
    assert FileIdentity.of(os.stat(target)) != identity
    with pytest.raises(UnsafePathError, match="not the file that was scanned"):
        vault.quarantine(target, identity=identity)
    assert target.read_bytes() == b"an innocent replacement"


def test_quarantine_refuses_changed_content(vault: Vault, tmp_path: Path) -> None:
    target = make(tmp_path / "x.exe", b"changed after the scan")
    with pytest.raises(QuarantineError, match="changed since it was scanned"):
        vault.quarantine(target, sha256="0" * 64)
    assert target.read_bytes() == b"changed after the scan"
    assert vault.items() == [] and os.listdir(vault.items_dir) == []
    assert os.listdir(vault.root / "journal") == []


def test_quarantine_refuses_what_is_not_a_regular_file(vault: Vault, tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(QuarantineError, match="not a regular file"):
        vault.quarantine(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    with pytest.raises(QuarantineError, match="not a regular file"):
        vault.quarantine(tmp_path / "dir")
    with pytest.raises(QuarantineError, match="does not exist"):
        vault.quarantine(tmp_path / "missing")


def test_restore_refuses_a_symlinked_original_folder(vault: Vault, tmp_path: Path) -> None:
    item = vault.quarantine(make(tmp_path / "docs" / "x.txt", b"secret"))
    (tmp_path / "docs").rmdir()
    (tmp_path / "attacker-target").mkdir()
    os.symlink(tmp_path / "attacker-target", tmp_path / "docs")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        vault.restore(item.id)
    assert os.listdir(tmp_path / "attacker-target") == []
    assert vault.get(item.id).id == item.id


def test_restore_refuses_a_symlinked_parent_of_the_target_folder(
    vault: Vault, tmp_path: Path
) -> None:
    item = vault.quarantine(make(tmp_path / "a" / "b" / "x.txt", b"secret"))
    os.rename(tmp_path / "a", tmp_path / "a-real")
    os.symlink(tmp_path / "a-real", tmp_path / "a")
    with pytest.raises(UnsafePathError, match="symbolic link"):
        vault.restore(item.id)
    with pytest.raises(UnsafePathError, match="symbolic link"):
        vault.restore(item.id, to_dir=tmp_path / "a" / "b")
    assert os.listdir(tmp_path / "a-real" / "b") == []
    assert vault.get(item.id).id == item.id


# --- integrity --------------------------------------------------------------------------------


def test_tampered_item_is_refused(vault: Vault, tmp_path: Path, warnings_seen: list[str]) -> None:
    item = vault.quarantine(make(tmp_path / "x.bin", os.urandom(5000)))
    path = vault.items_dir / f"{item.id}.aqv"
    raw = bytearray(path.read_bytes())
    raw[200] ^= 0x01  # inside the content
    path.write_bytes(bytes(raw))
    with pytest.raises(VaultIntegrityError, match="authentication"):
        vault.restore(item.id)
    assert os.listdir(tmp_path) == []  # no partial or temp file left
    assert os.listdir(vault.root / "journal") == []


def test_tampered_metadata_and_truncation_are_reported(
    vault: Vault, tmp_path: Path, warnings_seen: list[str]
) -> None:
    a = vault.quarantine(make(tmp_path / "a.bin", b"a" * 100))
    b = vault.quarantine(make(tmp_path / "b.bin", b"b" * 100))
    pa = vault.items_dir / f"{a.id}.aqv"
    raw = bytearray(pa.read_bytes())
    raw[-30] ^= 0x80  # inside the metadata
    pa.write_bytes(bytes(raw))
    pb = vault.items_dir / f"{b.id}.aqv"
    pb.write_bytes(pb.read_bytes()[:-40])
    assert vault.items() == []
    assert sum("cannot be read" in w for w in warnings_seen) == 2
    assert vault.delete(a.id) is None  # damaged items can still be deleted
    assert not pa.exists()


def test_an_item_cannot_be_renamed_to_another_id(vault: Vault, tmp_path: Path) -> None:
    a = vault.quarantine(make(tmp_path / "a.bin", b"a"))
    b = vault.quarantine(make(tmp_path / "b.bin", b"b"))
    pa, pb = (vault.items_dir / f"{i.id}.aqv" for i in (a, b))
    pb.unlink()
    os.rename(pa, pb)
    with pytest.raises(VaultIntegrityError):
        vault.get(b.id)


# --- ids, delete, purge -----------------------------------------------------------------------


def test_get_by_prefix_and_errors(vault: Vault, tmp_path: Path) -> None:
    item = vault.quarantine(make(tmp_path / "a", b"a"))
    assert vault.get(item.id[:4]).id == item.id
    assert vault.get(item.id.upper()).id == item.id
    with pytest.raises(ItemNotFound):
        vault.get("ffffffffffffffff" if not item.id.startswith("f") else "0000000000000000")
    with pytest.raises(ItemNotFound):
        vault.get("../../etc/passwd")
    with pytest.raises(ItemNotFound):
        vault.get(item.id[:2])  # too short to be trusted


def test_delete(vault: Vault, tmp_path: Path) -> None:
    item = vault.quarantine(make(tmp_path / "a", b"a"))
    deleted = vault.delete(item.id)
    assert deleted is not None and deleted.id == item.id
    assert vault.items() == []
    with pytest.raises(ItemNotFound):
        vault.restore(item.id)


def test_purge_after_n_days(
    aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    vault = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring)
    vault._clock = lambda: now[0]
    old = vault.quarantine(make(tmp_path / "old", b"old"))
    now[0] += timedelta(days=20)
    recent = vault.quarantine(make(tmp_path / "recent", b"recent"))
    now[0] += timedelta(days=10, seconds=1)  # old: 30 days + 1 s, recent: 10 days
    purged = vault.purge()  # default 30 days
    assert [i.id for i in purged] == [old.id]
    assert [i.id for i in vault.items()] == [recent.id]
    assert vault.purge(11) == []
    assert [i.id for i in vault.purge(0)] == [recent.id]
    with pytest.raises(ConfigError):
        vault.purge(-1)


def test_auto_purge_records_history(
    aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC)]
    vault = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring)
    vault._clock = lambda: now[0]
    vault.quarantine(make(tmp_path / "old", b"old"))
    now[0] += timedelta(days=31)
    seen: list[str] = []
    with History(aegis_paths.history_file, warn=seen.append) as history:
        service = _service(DecisionEngine(), vault, history)
        assert service.auto_purge(0, seen.append) == []  # 0 = off
        assert len(service.auto_purge(30, seen.append)) == 1
        events = history.events()
    assert [(e.action, e.outcome) for e in events] == [("purge", "success")]
    assert any("purged 1" in s for s in seen)


def test_quarantine_settings() -> None:
    assert QuarantineSettings.from_settings({}) == QuarantineSettings(30, True)
    s = QuarantineSettings.from_settings({"quarantine": {"purge_days": 7, "use_keyring": False}})
    assert (s.purge_days, s.use_keyring) == (7, False)
    for bad in ({"purge_days": -1}, {"purge_days": "7"}, {"use_keyring": 1}, {"x": 1}):
        with pytest.raises(ConfigError):
            QuarantineSettings.from_settings({"quarantine": bad})


# --- keys -------------------------------------------------------------------------------------


def test_key_lives_in_the_keyring(
    vault: Vault,
    aegis_paths: AegisPaths,
    memory_keyring: MemoryKeyring,
    tmp_path: Path,
    warnings_seen: list[str],
) -> None:
    item = vault.quarantine(make(tmp_path / "a", b"a"))
    assert len(memory_keyring.store) == 1
    (service, username), _ = next(iter(memory_keyring.store.items()))
    assert service == "aegis" and username.startswith("quarantine-key-")
    assert not (aegis_paths.data_dir / "quarantine.key").exists()
    assert vault.key_location.startswith("keyring:")
    assert warnings_seen == []
    info = json.loads((vault.root / "vault.json").read_text())
    assert info["key_source"] == "keyring" and len(info["key_check"]) == 32
    # a second process (a new Vault) finds the same key
    again = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring)
    assert again.read_content(item.id) == b"a"


@pytest.mark.parametrize(
    "backend",
    [keyring.backends.fail.Keyring(), keyring.backends.null.Keyring(), BrokenKeyring()],
    ids=["fail", "null", "broken"],
)
def test_no_usable_keyring_falls_back_to_a_private_key_file_and_says_so(
    aegis_paths: AegisPaths, tmp_path: Path, backend: KeyringBackend
) -> None:
    keyring.set_keyring(backend)
    seen: list[str] = []
    vault = Vault.for_paths(aegis_paths, warn=seen.append)  # the default: keyring.get_keyring()
    item = vault.quarantine(make(tmp_path / "e.com", EICAR))
    key_file = aegis_paths.data_dir / "quarantine.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any("no usable OS keyring" in s and str(key_file) in s for s in seen), seen
    assert vault.key_location == f"file:{key_file}"
    # later runs keep using the file; the warning was said once, when the file was made,
    # and stays visible in the key status (``aegis status``), not on every command
    seen2: list[str] = []
    again = Vault.for_paths(aegis_paths, warn=seen2.append)
    assert again.read_content(item.id) == EICAR
    assert not any("keyring" in s or "kept in a file" in s for s in seen2), seen2
    status = Vault.for_paths(aegis_paths, warn=seen2.append).key_status()
    assert status.where == "file" and status.path == str(key_file)
    assert status.fallback_reason and "no usable OS keyring" in status.fallback_reason
    assert status.warning and str(key_file) in status.warning


def test_keyring_can_be_turned_off(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    seen: list[str] = []
    vault = Vault.for_paths(aegis_paths, warn=seen.append, use_keyring=False)
    vault.quarantine(make(tmp_path / "a", b"a"))
    assert (aegis_paths.data_dir / "quarantine.key").exists()
    assert any("keyring use is turned off" in s for s in seen)


def test_key_file_made_readable_by_others_is_fixed_with_a_warning(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    keyring.set_keyring(keyring.backends.fail.Keyring())
    Vault.for_paths(aegis_paths, warn=print).quarantine(make(tmp_path / "a", b"a"))
    key_file = aegis_paths.data_dir / "quarantine.key"
    os.chmod(key_file, 0o644)
    seen: list[str] = []
    assert len(Vault.for_paths(aegis_paths, warn=seen.append).items()) == 1
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert any("readable by others" in s for s in seen)


def test_a_lost_keyring_entry_is_an_error_not_a_new_key(
    vault: Vault, aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    vault.quarantine(make(tmp_path / "a", b"a"))
    memory_keyring.store.clear()
    fresh = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring)
    with pytest.raises(KeyStoreError, match="missing from the OS keyring"):
        fresh.items()
    assert memory_keyring.store == {}  # no replacement key was made


def test_a_wrong_key_is_detected(
    vault: Vault, aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    vault.quarantine(make(tmp_path / "a", b"a"))
    key = next(iter(memory_keyring.store))
    memory_keyring.store[key] = __import__("base64").b64encode(os.urandom(32)).decode()
    fresh = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring)
    with pytest.raises(KeyStoreError, match="does not match"):
        fresh.items()


# --- steps and failures -----------------------------------------------------------------------


def _collapse(steps: list[str]) -> list[str]:
    return [s for i, s in enumerate(steps) if i == 0 or s != steps[i - 1]]


def test_steps_are_the_documented_ones(
    aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path
) -> None:
    steps: list[str] = []
    vault = Vault.for_paths(
        aegis_paths, warn=print, keyring_backend=memory_keyring, step_hook=steps.append
    )
    vault._chunk_size = 1024
    item = vault.quarantine(make(tmp_path / "a", os.urandom(3000)))
    assert steps.count("quarantine:chunk-written") == 3
    assert _collapse(steps) == list(QUARANTINE_STEPS)
    steps.clear()
    vault.restore(item.id)
    assert steps.count("restore:chunk-written") == 3
    assert _collapse(steps) == list(RESTORE_STEPS)


@pytest.mark.parametrize("failing_step", [s for s in QUARANTINE_STEPS if "removed" not in s])
def test_a_failed_quarantine_leaves_the_file_and_no_trace(
    aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path, failing_step: str
) -> None:
    def hook(step: str) -> None:
        if step == failing_step:
            raise OSError(errno.ENOSPC, "No space left on device")

    vault = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring, step_hook=hook)
    target = make(tmp_path / "x.exe", EICAR, 0o700)
    with pytest.raises(QuarantineError, match="No space left"):
        vault.quarantine(target)
    assert target.read_bytes() == EICAR
    assert os.listdir(vault.items_dir) == []
    assert os.listdir(vault.root / "journal") == []


@pytest.mark.parametrize(
    "failing_step",
    [
        "restore:journal-written",
        "restore:temp-created",
        "restore:chunk-written",
        "restore:temp-written",
        "restore:target-journaled",
    ],
)
def test_a_failed_restore_keeps_the_item_and_leaves_no_trace(
    aegis_paths: AegisPaths, memory_keyring: MemoryKeyring, tmp_path: Path, failing_step: str
) -> None:
    armed = [False]

    def hook(step: str) -> None:
        if armed[0] and step == failing_step:
            raise OSError(errno.EIO, "Input/output error")

    vault = Vault.for_paths(aegis_paths, warn=print, keyring_backend=memory_keyring, step_hook=hook)
    item = vault.quarantine(make(tmp_path / "x.exe", EICAR))
    armed[0] = True
    with pytest.raises(QuarantineError, match="Input/output"):
        vault.restore(item.id)
    assert os.listdir(tmp_path) == []
    assert vault.read_content(item.id) == EICAR
    assert os.listdir(vault.root / "journal") == []


def test_hard_links_are_reported(vault: Vault, tmp_path: Path, warnings_seen: list[str]) -> None:
    target = make(tmp_path / "x.exe", EICAR)
    os.link(target, tmp_path / "second-name")
    vault.quarantine(target)
    assert any("1 other hard link" in w for w in warnings_seen)


# --- responding to scan reports ---------------------------------------------------------------


def _service(
    decisions: DecisionEngine, vault: Vault | None, history: History | None
) -> OutcomeService:
    return OutcomeService(
        lambda: decisions,
        vault=(lambda: vault) if vault is not None else None,
        history=lambda: history,
    )


def _eicar_report(path: Path) -> FileReport:
    finding = Finding("eicar", "EICAR-Test-File", Severity.MALICIOUS, kind=FindingKind.SIGNATURE)
    sha = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"
    obj = ObjectResult(str(path), Verdict.MALICIOUS, [finding], sha256=sha, size=len(EICAR))
    return FileReport(str(path), Verdict.MALICIOUS, [obj], sha256=sha, size=len(EICAR))


def _ml_report(path: Path) -> FileReport:
    finding = Finding("ml", "pe-model", Severity.MALICIOUS, 0.97, FindingKind.ML)
    obj = ObjectResult(str(path), Verdict.SUSPICIOUS, [finding])
    return FileReport(str(path), Verdict.SUSPICIOUS, [obj], size=3)


def test_responder_quarantines_signature_findings_and_records_history(
    vault: Vault, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    target = make(tmp_path / "eicar.com", EICAR)
    with History(aegis_paths.history_file, warn=print) as history:
        service = _service(DecisionEngine(), vault, history)
        response = service.respond(_eicar_report(target), mode=Mode.ACT)
        events = history.events()
    assert response.taken is Action.QUARANTINE and response.item_id is not None
    assert not target.exists()
    assert vault.read_content(response.item_id) == EICAR
    assert any("Quarantined as item" in line for line in response.explanation)
    as_dict = response.to_dict()
    assert as_dict["action"] == "quarantine" and as_dict["explanation"]
    item = vault.get(response.item_id)
    assert item.detections[0]["name"] == "EICAR-Test-File"
    assert any("Verdict malicious" in line for line in item.explanation)
    assert [(e.kind, e.action, e.outcome) for e in events] == [
        ("detection", "quarantine", None),
        ("action", "quarantine", "success"),
    ]
    assert events[1].item_id == response.item_id


def test_responder_without_apply_only_reports(vault: Vault, tmp_path: Path) -> None:
    target = make(tmp_path / "eicar.com", EICAR)
    service = _service(DecisionEngine(), vault, None)
    response = service.respond(_eicar_report(target), mode=Mode.REPORT)
    assert response.taken is Action.REPORT and target.exists()
    assert "use --quarantine" in response.explanation[-1]
    # one true sentence about the action: the policy's "will move it" is not left beside it
    assert not any("will move it" in line for line in response.explanation)


def test_responder_asks_on_weak_signals(
    vault: Vault, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    target = make(tmp_path / "tool.exe", b"odd")
    with History(aegis_paths.history_file, warn=print) as history:
        service = _service(DecisionEngine(), vault, history)
        r = service.respond(_ml_report(target), mode=Mode.ACT)
        assert r.taken is Action.ASK and target.exists()

        asked: list[str] = []

        def no(fd: object) -> bool:
            asked.append("asked")
            return False

        r = service.respond(_ml_report(target), mode=Mode.ACT, ask=no)
        assert asked and r.taken is Action.REPORT and target.exists()
        r = service.respond(_ml_report(target), mode=Mode.ACT, ask=lambda fd: True)
        assert r.taken is Action.QUARANTINE and not target.exists()
        kinds = [(e.kind, e.action or e.decision, e.outcome) for e in history.events()]
    assert ("action", "ask", "unknown") in kinds
    assert ("decision", "keep", None) in kinds and ("decision", "quarantine", None) in kinds


def test_responder_records_a_failed_quarantine(
    vault: Vault, aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    target = make(tmp_path / "eicar.com", EICAR)
    report = _eicar_report(target)
    target.write_bytes(EICAR + b"changed")
    with History(aegis_paths.history_file, warn=print) as history:
        r = _service(DecisionEngine(), vault, history).respond(report, mode=Mode.ACT)
        events = history.events()
    assert r.taken is Action.REPORT and r.error and "changed since" in r.error
    assert target.exists()
    assert events[-1].outcome == "failure"


def test_responder_respects_exclusions_and_policy(vault: Vault, tmp_path: Path) -> None:
    target = make(tmp_path / "eicar.com", EICAR)
    engine = DecisionEngine(Policy(malicious=Action.REPORT))
    r = _service(engine, vault, None).respond(_eicar_report(target), mode=Mode.ACT)
    assert r.taken is Action.REPORT and target.exists()


def test_reading_an_empty_quarantine_creates_nothing(
    vault: Vault, aegis_paths: AegisPaths, memory_keyring: MemoryKeyring
) -> None:
    assert vault.items() == [] and vault.recover() == [] and vault.purge(0) == []
    with pytest.raises(ItemNotFound, match="empty"):
        vault.restore("0123456789abcdef")
    assert not aegis_paths.quarantine_dir.exists()
    assert memory_keyring.store == {}
