"""The typed settings module: bad input becomes a clear warning naming key and line, the
default applies, and nothing in the file is lost."""

from __future__ import annotations

import errno
import os
import tomllib
from pathlib import Path

import pytest
from conftest import EICAR, NO_KEYRING, run_cli, write_settings

from aegis_engine import Engine
from aegis_engine.config import ScanLimits
from aegis_engine.errors import ConfigError
from aegis_engine.paths import AegisPaths
from aegis_engine.settings import Settings, SettingsStore, store


def test_max_file_size_abc_keeps_the_default_and_names_key_and_line(
    aegis_paths: AegisPaths,
) -> None:
    write_settings(aegis_paths, '# mine\n[limits]\nmax_files = 5\nmax_file_size = "abc"\n')
    seen: list[str] = []
    engine = Engine(aegis_paths, on_warning=seen.append)
    assert engine.limits.max_file_size == ScanLimits().max_file_size
    assert engine.limits.max_files == 5  # the valid value beside it is used
    [warning] = seen
    assert "[limits] max_file_size" in warning and "line 4" in warning
    assert "default" in warning


def test_max_file_size_abc_in_the_cli_is_a_warning_and_the_scan_still_detects(
    aegis_paths: AegisPaths, tmp_path: Path
) -> None:
    write_settings(aegis_paths, '[limits]\nmax_file_size = "abc"\n')
    (tmp_path / "e.com").write_bytes(EICAR)
    r = run_cli("scan", str(tmp_path), env=NO_KEYRING)
    assert r.returncode == 1, r.stderr
    assert "EICAR-Test-File" in r.stdout
    assert "max_file_size" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[decision]\nmalicious = "delete"\n', "[decision] malicious"),
        ("[quarantine]\npurge_days = -3\n", "[quarantine] purge_days"),
        ('[exclusions]\nsha256 = ["xyz"]\n', "[exclusions] sha256"),
        ('[updates]\nserver = "http://plain.example"\n', "[updates] server"),
        ('[updates]\npins = ["nope"]\n', "[updates] pins"),
        ("[tray]\nprompt_timeout = 1\n", "[tray] prompt_timeout"),
        ('[schedule]\ntime = "25:00"\n', "[schedule] time"),
        ('limits = "big"\n', "limits must be a table"),
    ],
)
def test_invalid_values_are_named_and_defaults_kept(tmp_path: Path, text: str, words: str) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    seen: list[str] = []
    settings = SettingsStore(path, warn=seen.append).current
    assert settings.values == Settings.defaults().values
    assert len(seen) == 1 and words in seen[0] and str(path) in seen[0]


def test_unknown_keys_warn_and_are_kept_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text('[limits]\nmax_filesize = 10\n\n[colours]\ntheme = "dark"\n')
    seen: list[str] = []
    s = SettingsStore(path, warn=seen.append)
    assert any("unknown setting [limits] max_filesize" in w and "line 2" in w for w in seen)
    assert any("unknown table [colours]" in w for w in seen)
    s.update({"tray": {"prompt_timeout": 30}})
    data = tomllib.loads(path.read_text())
    assert data["limits"] == {"max_filesize": 10} and data["colours"] == {"theme": "dark"}
    assert data["tray"] == {"prompt_timeout": 30}


def test_a_corrupt_file_means_defaults_and_is_set_aside_not_lost(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    broken = "[limits\nmax_files = 3\n"
    path.write_text(broken)
    seen: list[str] = []
    s = SettingsStore(path, warn=seen.append)
    assert s.current.values == Settings.defaults().values
    assert "not valid TOML" in seen[0] and "line 1" in seen[0]
    assert path.read_text() == broken  # reading never changes the file
    s.update({"realtime": {"enabled": False}})
    [aside] = tmp_path.glob("settings.toml.corrupt-*")
    assert aside.read_text() == broken
    assert tomllib.loads(path.read_text()) == {"realtime": {"enabled": False}}
    assert any(str(aside) in w for w in seen)


def test_a_settings_path_that_is_not_a_regular_file_is_refused(tmp_path: Path) -> None:
    fifo = tmp_path / "settings.toml"
    os.mkfifo(fifo)
    seen: list[str] = []
    assert SettingsStore(fifo, warn=seen.append).current.values == Settings.defaults().values
    assert "not a regular file" in seen[0]


def test_a_huge_settings_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("# " + "x" * (store.MAX_SETTINGS_BYTES + 10) + "\n")
    seen: list[str] = []
    assert SettingsStore(path, warn=seen.append).current.values == Settings.defaults().values
    assert "larger than" in seen[0]


def test_invalid_updates_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[limits]\nmax_files = 5\n")
    s = SettingsStore(path)
    before = path.read_bytes()
    with pytest.raises(ConfigError, match=r"\[limits\] max_file_size"):
        s.update({"tray": {"prompt_timeout": 30}, "limits": {"max_file_size": "abc"}})
    with pytest.raises(ConfigError, match="unknown setting"):
        s.update({"limits": {"nonsense": 1}})
    assert path.read_bytes() == before


def test_a_read_only_file_system_is_a_clear_error_and_nothing_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[limits]\nmax_files = 5\n")
    s = SettingsStore(path)

    def read_only(*_a: object, **_k: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(store, "atomic_write", read_only)
    with pytest.raises(ConfigError, match=r"cannot save settings.*Read-only file system"):
        s.update({"tray": {"prompt_timeout": 30}})
    assert path.read_text() == "[limits]\nmax_files = 5\n"
    assert s.current.limits.max_files == 5


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores mode bits")
def test_a_read_only_folder_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / "config"
    folder.mkdir()
    path = folder / "settings.toml"
    path.write_text("[limits]\nmax_files = 5\n")
    folder.chmod(0o500)
    try:
        s = SettingsStore(path)
        assert s.current.limits.max_files == 5
        with pytest.raises(ConfigError, match="cannot save settings"):
            s.update({"tray": {"prompt_timeout": 30}})
    finally:
        folder.chmod(0o700)
    assert path.read_text() == "[limits]\nmax_files = 5\n"


def test_reload_and_change_notification_reach_the_engine(aegis_paths: AegisPaths) -> None:
    engine = Engine(aegis_paths)
    heard: list[Settings] = []
    engine.settings_store.subscribe(heard.append)
    assert engine.decisions.policy.malicious.value == "quarantine"
    engine.settings_store.update({"decision": {"malicious": "report"}})
    assert engine.decisions.policy.malicious.value == "report" and len(heard) == 1
    write_settings(aegis_paths, "[limits]\nmax_files = 7\n")
    engine.reload_settings()
    assert engine.limits.max_files == 7 and engine.decisions.policy.malicious.value == "quarantine"
    assert len(heard) == 2
    engine.reload_settings()  # nothing changed: nobody is told
    assert len(heard) == 2


def test_update_and_cloud_tables_are_typed(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(
        '[updates]\nserver = "https://updates.example:8443"\nroot = "/etc/aegis/root.json"\n'
        'ca_file = "/etc/aegis/ca.pem"\n'
        'pins = ["sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]\n'
        'client_cert = "/c.pem"\nclient_key = "/k.pem"\nproxy = "http://proxy:3128"\n\n'
        '[cloud]\nlookup_url = "https://lookup.example/v1"\n'
    )
    s = SettingsStore(path).current
    assert s.problems == ()
    up = s.updates
    assert up.server == "https://updates.example:8443" and up.net.proxy == "http://proxy:3128"
    assert up.net.pins == ("sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",)
    assert up.root == Path("/etc/aegis/root.json") and up.net.client_key == Path("/k.pem")
    assert s.cloud.lookup_url == "https://lookup.example/v1"


def test_docs_list_every_setting() -> None:
    from aegis_engine.settings import SCHEMA

    text = (Path(__file__).resolve().parents[1] / "docs" / "settings.md").read_text()
    for table, keys in SCHEMA.items():
        section = text.split(f"## [{table}]", 1)
        assert len(section) == 2, f"docs/settings.md has no [{table}] section"
        body = section[1].split("\n## ", 1)[0]
        for key, spec in keys.items():
            assert f"| `{key}` |" in body and spec.expect in body, f"[{table}] {key}"
