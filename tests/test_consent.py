"""The consent store (aegis_engine.privacy) and ``aegis consent``: defaults, persistence,
require(), previews, a damaged file, the CLI contract."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from aegis_engine.errors import AegisError
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import (
    PURPOSES,
    ConsentRequired,
    ConsentStore,
    UnknownPurpose,
    purpose,
)
from tests.conftest import run_cli

OFF_BY_DEFAULT = ("cloud-lookup", "sample-submission", "crash-reports", "usage-stats")


@pytest.fixture
def store(aegis_paths: AegisPaths) -> ConsentStore:
    return ConsentStore.for_paths(aegis_paths)


def test_the_purposes_are_data_with_plain_words_and_exact_data() -> None:
    ids = [p.id for p in PURPOSES]
    assert ids == ["update-checks", *OFF_BY_DEFAULT]  # the one on by default first
    for p in PURPOSES:
        assert p.title and p.summary and p.never_sends
        assert p.sends, p.id
        for f in p.sends:
            assert f.name and f.description and f.example
        assert not p.identifiers
    assert [p.id for p in PURPOSES if p.default] == ["update-checks"]
    lookup = purpose("cloud-lookup")
    assert [f.name for f in lookup.sends] == ["prefix"], "a look-up sends a prefix, nothing else"
    assert len(lookup.sends[0].example) == 5 and "5" in lookup.sends[0].description


def test_everything_is_off_by_default_except_update_checks(store: ConsentStore) -> None:
    states = {s.purpose.id: s for s in store.states()}
    for pid in OFF_BY_DEFAULT:
        assert states[pid].granted is False and states[pid].chosen is False
        with pytest.raises(ConsentRequired) as info:
            store.require(pid)
        assert info.value.purpose == pid
        assert isinstance(info.value, AegisError)
    assert states["update-checks"].granted is True
    store.require("update-checks")
    assert not store.reviewed
    assert not store.path.exists(), "reading must not create the file"


def test_choices_persist_and_are_shared_between_instances(aegis_paths: AegisPaths) -> None:
    first = ConsentStore.for_paths(aegis_paths)
    second = ConsentStore.for_paths(aegis_paths)
    assert not second.is_granted("cloud-lookup")  # caches the (missing) file
    first.grant("cloud-lookup")
    first.revoke("update-checks")
    assert second.is_granted("cloud-lookup"), "a change by another process must be seen"
    second.require("cloud-lookup")
    with pytest.raises(ConsentRequired):
        second.require("update-checks")
    reloaded = ConsentStore.for_paths(aegis_paths)
    assert reloaded.is_granted("cloud-lookup") and not reloaded.is_granted("update-checks")
    assert reloaded.state("update-checks").chosen
    assert reloaded.reviewed
    assert stat.S_IMODE(os.stat(reloaded.path).st_mode) == 0o600
    doc = json.loads(reloaded.path.read_text())
    assert doc["purposes"]["cloud-lookup"]["granted"] is True


def test_set_many_records_a_dialog_at_once(store: ConsentStore) -> None:
    store.set_many({p.id: False for p in PURPOSES})
    assert not any(s.granted for s in store.states())
    assert all(s.chosen for s in store.states())
    assert store.reviewed


def test_mark_reviewed_keeps_defaults(store: ConsentStore) -> None:
    store.mark_reviewed()
    assert store.reviewed
    assert store.is_granted("update-checks") and not store.is_granted("cloud-lookup")


def test_unknown_purpose_is_a_clear_error(store: ConsentStore) -> None:
    with pytest.raises(UnknownPurpose, match="known: update-checks, cloud-lookup"):
        store.require("telemetry")
    with pytest.raises(UnknownPurpose):
        store.grant("telemetry")
    assert not store.path.exists()


def test_preview_says_exactly_what_would_be_sent(store: ConsentStore) -> None:
    preview = store.preview("cloud-lookup")
    assert preview.allowed is False
    assert list(preview.example) == ["prefix"]
    text = preview.to_text()
    assert "OFF" in text and "prefix" in text and "Never sends" in text
    assert "Nothing is sent for this purpose while it is off." in text
    store.grant("cloud-lookup")
    assert store.preview("cloud-lookup").allowed
    crash = store.preview("crash-reports")
    assert set(crash.example) == {"aegis_version", "os", "python", "traceback"}


def test_a_damaged_file_fails_closed_and_says_so(aegis_paths: AegisPaths) -> None:
    seen: list[str] = []
    store = ConsentStore.for_paths(aegis_paths, warn=seen.append)
    store.path.parent.mkdir(parents=True, exist_ok=True)
    store.path.write_text("{not json")
    assert not any(s.granted for s in store.states()), "damaged: everything off"
    with pytest.raises(ConsentRequired):
        store.require("update-checks")
    assert not store.reviewed
    assert seen and "damaged" in seen[0]
    store.grant("update-checks")  # choosing again replaces the damaged file
    assert store.is_granted("update-checks") and not store.is_granted("cloud-lookup")


def test_privacy_package_has_no_network_code() -> None:
    root = Path(__file__).resolve().parents[1] / "aegis_engine" / "privacy"
    for path in root.glob("*.py"):
        text = path.read_text()
        for word in ("socket", "urllib", "http.client", "requests", "ssl"):
            assert f"import {word}" not in text and f"from {word}" not in text, (path, word)


def test_privacy_imports_without_qt() -> None:
    code = (
        "import sys, aegis_engine.privacy, aegis_engine.cli.consent_cmd; "
        "assert not any(m.startswith(('PySide6', 'aegis_gui')) for m in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- the CLI ------------------------------------------------------------------------------------


def test_cli_list_grant_revoke_show(aegis_home: Path) -> None:
    out = run_cli("consent", "list")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    for pid in OFF_BY_DEFAULT:
        assert any(line.split()[:2] == [pid, "off"] for line in lines), out.stdout
    assert any(line.split()[:2] == ["update-checks", "on*"] for line in lines)
    assert "carries no identifier" in out.stdout

    assert run_cli("consent", "grant", "usage-stats").returncode == 0
    assert run_cli("consent", "revoke", "update-checks").returncode == 0
    listed = json.loads(run_cli("consent", "list", "--json").stdout)
    by_id = {d["id"]: d for d in listed}
    assert by_id["usage-stats"]["granted"] is True
    assert by_id["update-checks"]["granted"] is False
    assert by_id["cloud-lookup"]["granted"] is False
    assert by_id["cloud-lookup"]["sends"][0]["name"] == "prefix"

    shown = run_cli("consent", "show", "sample-submission")
    assert shown.returncode == 0
    assert "full content of the detected file" in shown.stdout
    as_json = json.loads(run_cli("consent", "show", "usage-stats", "--json").stdout)
    assert as_json["allowed"] is True and "counts" in as_json["would_send"]

    # the GUI reads the same store
    store = ConsentStore.for_paths(AegisPaths.under(aegis_home))
    assert store.is_granted("usage-stats") and not store.is_granted("update-checks")


def test_cli_unknown_purpose_exits_2(aegis_home: Path) -> None:
    out = run_cli("consent", "grant", "everything")
    assert out.returncode == 2
    assert "unknown purpose 'everything'" in out.stderr
    assert not (AegisPaths.under(aegis_home).config_dir / "consent.json").exists()
