"""`aegis scan --quarantine`, `aegis quarantine ...` and `aegis history ...` as a user runs them."""

from __future__ import annotations

import json
import os
import stat
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import keyring
import keyring.backends.fail
import pytest
from conftest import EICAR, NO_KEYRING, run_cli, write_settings

from aegis_engine.cli import main
from aegis_engine.paths import AegisPaths
from aegis_engine.quarantine import Vault
from tests.e2e_gui.helpers import MemoryKeyring

EICAR_SHA = "275a021bbfb6489e54d471899f7db9d1663fc695ec2fe2a2c4538aabf651fd0f"


pytestmark = pytest.mark.usefixtures("no_keyring")  # child processes: NO_KEYRING


def cli(*args: str) -> tuple[int, str, str]:
    r = run_cli(*args, env=NO_KEYRING)
    return r.returncode, r.stdout, r.stderr


def json_lines(out: str) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def quarantine_list() -> list[dict]:  # type: ignore[type-arg]
    code, out, err = cli("quarantine", "list", "--json")
    assert code == 0, err
    items = json.loads(out)
    assert isinstance(items, list)
    return items


# --- scan --quarantine --------------------------------------------------------------------------


def test_scan_quarantine_round_trip(tmp_path: Path, aegis_home: Path) -> None:
    folder = tmp_path / "downloads"
    folder.mkdir()
    eicar = folder / "eicar test.com"
    eicar.write_bytes(EICAR)
    os.chmod(eicar, 0o754)
    (folder / "clean.txt").write_text("nothing")

    code, out, err = cli("scan", "--json", "--quarantine", str(folder))
    assert code == 1, err
    *objects, summary = json_lines(out)
    assert summary["summary"]["threats"] == 1
    [obj] = objects
    assert obj["action"] == "quarantine" and obj["policy_action"] == "quarantine"
    assert any("Verdict malicious" in line for line in obj["explanation"])
    assert any("Quarantined as item" in line for line in obj["explanation"])
    assert not eicar.exists() and (folder / "clean.txt").exists()
    assert "no usable OS keyring" in err  # said clearly, on stderr

    # nothing readable in the whole profile
    for root, _, names in os.walk(aegis_home):
        for name in names:
            assert EICAR not in (Path(root) / name).read_bytes(), name

    [item] = quarantine_list()
    assert item["id"] == obj["quarantine_id"]
    assert item["path"] == str(eicar) and item["sha256"] == EICAR_SHA
    assert item["detections"][0]["name"] == "EICAR-Test-File"
    assert item["quarantined_at"].endswith("Z")

    code, out, err = cli("quarantine", "restore", item["id"])
    assert code == 0, err
    assert f"Restored {item['id']} to {eicar}" in out
    assert eicar.read_bytes() == EICAR and stat.S_IMODE(eicar.stat().st_mode) == 0o754
    assert quarantine_list() == []

    code, out, err = cli("history", "--json")
    assert code == 0, err
    events = json.loads(out)
    assert [(e["kind"], e.get("action") or e.get("decision")) for e in events] == [
        ("detection", "quarantine"),
        ("action", "quarantine"),
        ("decision", "restore"),
        ("action", "restore"),
    ]


def test_scan_without_quarantine_only_reports(tmp_path: Path) -> None:
    (tmp_path / "e.com").write_bytes(EICAR)
    code, out, err = cli("scan", "--json", str(tmp_path))
    assert code == 1, err
    [obj, _] = json_lines(out)
    assert obj["action"] == "report" and obj["policy_action"] == "quarantine"
    assert (tmp_path / "e.com").exists()
    code, out, err = cli("scan", str(tmp_path))
    assert "Verdict malicious: EICAR-Test-File matches a known-malware signature" in out
    assert "use --quarantine to act" in out


def test_scan_quarantine_moves_the_archive_holding_a_threat(tmp_path: Path) -> None:
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
        zf.writestr("tools/eicar.com", EICAR)
    original = archive.read_bytes()
    code, out, err = cli("scan", "--json", "--quarantine", str(tmp_path))
    assert code == 1, err
    objects = json_lines(out)[:-1]
    assert objects and objects[0]["path"].endswith("bundle.zip!tools/eicar.com")
    assert objects[0]["action"] == "quarantine"
    assert not archive.exists()
    [item] = quarantine_list()
    assert item["path"] == str(archive)
    code, _, err = cli("quarantine", "restore", item["id"])
    assert code == 0, err
    assert archive.read_bytes() == original


def test_scan_respects_allowlisted_signatures(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    write_settings(aegis_paths, '[exclusions]\nsignatures = ["EICAR-Test-File"]\n')
    (tmp_path / "e.com").write_bytes(EICAR)
    code, out, err = cli("scan", "--json", "--quarantine", str(tmp_path))
    assert code == 0, (out, err)
    [obj, summary] = json_lines(out)
    assert obj["verdict"] == "clean" and obj["action"] == "none"
    assert any("allowlisted signature name" in line for line in obj["explanation"])
    assert summary["summary"]["threats"] == 0
    assert (tmp_path / "e.com").exists()


def test_scan_policy_report_from_settings(tmp_path: Path, aegis_paths: AegisPaths) -> None:
    write_settings(aegis_paths, '[decision]\nmalicious = "report"\n')
    (tmp_path / "e.com").write_bytes(EICAR)
    code, out, _ = cli("scan", "--json", "--quarantine", str(tmp_path))
    assert code == 1
    assert json_lines(out)[0]["action"] == "report"
    assert (tmp_path / "e.com").exists()


def test_scan_refuses_to_quarantine_through_a_symlinked_folder(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (real / "e.com").write_bytes(EICAR)
    os.symlink(real, tmp_path / "link")
    code, out, err = cli("scan", "--json", "--quarantine", str(tmp_path / "link" / "e.com"))
    assert code == 1, err
    obj = json_lines(out)[0]
    assert obj["action"] == "report" and "symbolic link" in obj["action_error"]
    assert (real / "e.com").read_bytes() == EICAR
    assert quarantine_list() == []


# --- aegis quarantine ---------------------------------------------------------------------------


def _seed(aegis_paths: AegisPaths, *files: Path) -> list[str]:
    vault = Vault.for_paths(aegis_paths, warn=lambda m: None)
    return [vault.quarantine(f).id for f in files]


def test_list_human_and_json(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    code, out, _ = cli("quarantine", "list")
    assert code == 0 and "empty" in out
    assert quarantine_list() == []
    odd = tmp_path / os.fsdecode(b"bad \xff name.exe")
    odd.write_bytes(b"x")
    [item_id] = _seed(aegis_paths, odd)
    code, out, _ = cli("quarantine", "list")
    assert item_id in out and "bad \\xff name.exe" in out
    [item] = quarantine_list()
    assert item["path"].endswith("bad \\xff name.exe")
    assert os.fsencode(str(odd)) == __import__("base64").b64decode(item["path_b64"])


def test_restore_never_overwrites_and_to_dir(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    f = tmp_path / "doc.txt"
    f.write_bytes(b"old")
    [a] = _seed(aegis_paths, f)
    f.write_bytes(b"new")
    code, out, err = cli("quarantine", "restore", a)
    assert code == 0, err
    assert "doc (restored).txt" in out and "nothing was overwritten" in out
    assert f.read_bytes() == b"new"
    assert (tmp_path / "doc (restored).txt").read_bytes() == b"old"

    [b] = _seed(aegis_paths, f)
    dest = tmp_path / "elsewhere"
    dest.mkdir()
    code, out, err = cli("quarantine", "restore", b[:6], "--to", str(dest))
    assert code == 0, err
    assert (dest / "doc.txt").read_bytes() == b"new"


def test_restore_errors_exit_2(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    code, _, err = cli("quarantine", "restore", "0123456789abcdef")
    assert code == 2 and "no quarantined item" in err
    f = tmp_path / "sub" / "x"
    f.parent.mkdir()
    f.write_bytes(b"x")
    [a] = _seed(aegis_paths, f)
    f.parent.rmdir()
    os.symlink(tmp_path, tmp_path / "sub")
    code, _, err = cli("quarantine", "restore", a)
    assert code == 2 and "symbolic link" in err
    assert len(quarantine_list()) == 1


def test_delete_and_purge(aegis_paths: AegisPaths, tmp_path: Path) -> None:
    files = []
    for n in range(3):
        files.append(tmp_path / f"f{n}")
        files[-1].write_bytes(b"%d" % n)
    ids = _seed(aegis_paths, *files)
    code, out, err = cli("quarantine", "delete", ids[0])
    assert code == 0 and "for good" in out, err
    assert {i["id"] for i in quarantine_list()} == set(ids[1:])
    code, out, _ = cli("quarantine", "purge", "--days", "1")
    assert code == 0 and "Purged 0 item(s)" in out
    code, out, _ = cli("quarantine", "purge", "--days", "0")
    assert code == 0 and "Purged 2 item(s)" in out
    assert quarantine_list() == []
    code, out, _ = cli("history", "--json")
    actions = [e.get("action") for e in json.loads(out) if e["kind"] == "action"]
    assert actions == ["delete", "purge", "purge"]


def test_automatic_purge_after_the_configured_days(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    vault = Vault.for_paths(aegis_paths, warn=lambda m: None)
    vault._clock = lambda: datetime.now(UTC) - timedelta(days=8)
    (tmp_path / "old").write_bytes(b"old")
    vault.quarantine(tmp_path / "old")
    settings = write_settings(aegis_paths, "[quarantine]\npurge_days = 10\n")
    assert len(quarantine_list()) == 1  # 8 days < 10
    settings.write_text("[quarantine]\npurge_days = 7\n")
    code, out, err = cli("quarantine", "list", "--json")
    assert code == 0 and json.loads(out) == [] and "purged 1 quarantined item(s)" in err


def test_quarantine_needs_an_action() -> None:
    code, _, err = cli("quarantine")
    assert code == 2 and "ACTION" in err


def test_cli_in_process_with_a_keyring(
    aegis_paths: AegisPaths, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    (tmp_path / "e.com").write_bytes(EICAR)
    assert main(["scan", "--json", "--quarantine", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "keyring" not in captured.err  # a working keyring: nothing to warn about
    assert not (aegis_paths.data_dir / "quarantine.key").exists()
    assert len(backend.store) == 1
    assert main(["quarantine", "list", "--json"]) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert main(["quarantine", "restore", item["id"]]) == 0
    assert (tmp_path / "e.com").read_bytes() == EICAR


# --- aegis history ------------------------------------------------------------------------------


def test_history_since_and_export(tmp_path: Path) -> None:
    (tmp_path / "e.com").write_bytes(EICAR)
    cli("scan", "--quarantine", str(tmp_path))
    code, out, _ = cli("history")
    assert code == 0 and "detection" in out and "quarantine success" in out
    code, out, _ = cli("history", "--json", "--since", "1h")
    assert len(json.loads(out)) == 2
    code, out, _ = cli("history", "--json", "--since", "2999-01-01")
    assert json.loads(out) == []
    code, _, err = cli("history", "--since", "last tuesday")
    assert code == 2 and "--since" in err

    export = tmp_path / "out" / "events.jsonl"
    code, out, err = cli("history", "export", "--ecs", str(export))
    assert code == 2 and not export.parent.exists(), "a missing folder is not created"
    assert err.count("\n") == 1 and "does not exist" in err and out == ""
    export.parent.mkdir()
    code, _, err = cli("history", "export", "--ecs", str(export))
    assert code == 0 and "Exported 2 event(s)" in err
    docs = [json.loads(line) for line in export.read_text().splitlines()]
    assert [d["event"]["kind"] for d in docs] == ["alert", "event"]
    assert all(d["ecs"]["version"] and "@timestamp" in d and "host" not in d for d in docs)
    assert docs[0]["file"]["hash"]["sha256"] == EICAR_SHA
    assert docs[0]["rule"]["name"] == "EICAR-Test-File"
    assert stat.S_IMODE(export.stat().st_mode) == 0o600

    code, out, _ = cli("history", "export", "--ecs", "-", "--include-hostname", "--since", "1d")
    docs = [json.loads(line) for line in out.splitlines()]
    assert len(docs) == 2 and all(d["host"]["hostname"] for d in docs)


def test_history_with_a_corrupt_database(aegis_paths: AegisPaths) -> None:
    aegis_paths.history_file.parent.mkdir(parents=True, exist_ok=True)
    aegis_paths.history_file.write_bytes(b"\x00garbage" * 1000)
    code, out, err = cli("history")
    assert code == 0 and "No events yet" in out
    assert "damaged" in err and "new, empty history" in err
