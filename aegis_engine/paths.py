"""Where Aegis keeps its files: platformdirs, or everything under $AEGIS_HOME."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "aegis"
HOME_ENV = "AEGIS_HOME"


@dataclass(frozen=True)
class AegisPaths:
    """All locations in one place. Build it with :meth:`default` (or pass a root for tests)."""

    config_dir: Path
    data_dir: Path
    cache_dir: Path
    state_dir: Path

    @classmethod
    def default(cls) -> AegisPaths:
        home = os.environ.get(HOME_ENV)
        if home:
            return cls.under(Path(home))
        return cls(
            config_dir=Path(platformdirs.user_config_dir(APP_NAME, appauthor=False)),
            data_dir=Path(platformdirs.user_data_dir(APP_NAME, appauthor=False)),
            cache_dir=Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False)),
            state_dir=Path(platformdirs.user_state_dir(APP_NAME, appauthor=False)),
        )

    @classmethod
    def under(cls, root: Path) -> AegisPaths:
        root = root.expanduser().absolute()
        return cls(
            config_dir=root / "config",
            data_dir=root / "data",
            cache_dir=root / "cache",
            state_dir=root / "state",
        )

    # Derived locations -------------------------------------------------------------------
    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.toml"

    @property
    def compiled_rules_dir(self) -> Path:
        return self.cache_dir / "compiled-rules"

    @property
    def rules_cache_key_file(self) -> Path:
        """Key that seals the compiled-rules cache; kept in the config folder, away from the
        cache it protects (detectors/yara_cache.py)."""
        return self.config_dir / "rules-cache.key"

    @property
    def scan_cache_file(self) -> Path:
        return self.cache_dir / "scan-cache.sqlite3"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    @property
    def history_file(self) -> Path:
        return self.data_dir / "history.sqlite3"

    @property
    def content_dir(self) -> Path:
        """Downloaded signature content (updates) lives here; bundled content is in resources."""
        return self.data_dir / "content"

    @property
    def user_hashes_dir(self) -> Path:
        """The user's own hash lists (``.hdb``/``.hsb`` blocklists, ``.fp``/``.sfp`` allowlists),
        read by every scan, the monitor's and the tray app's included, after the signatures."""
        return self.config_dir / "hashes"

    def ensure(self, path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path
