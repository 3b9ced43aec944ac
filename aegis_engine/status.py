"""What ``aegis --version``, ``aegis status`` and the tray app's status show: one function.

:func:`collect_status` gathers versions, where the data lives, where the quarantine key is and
the warnings worth keeping in view. It creates nothing (no key, no vault, no database) and
compiles nothing. Clients (the CLI, the tray app, later the update client) read a
:class:`StatusReport`; new facts are added here as fields, once.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from .bounded_io import load_json_file
from .paths import AegisPaths

DIST_NAME = "aegis"
_QUARANTINE_KEY_FILE = "quarantine.key"  # quarantine/vault.py KEY_FILE_NAME
_VAULT_INFO = "vault.json"  # quarantine/keys.py INFO_FILE


def aegis_version() -> str:
    """The installed package's version (from its metadata), or ``unknown``."""
    try:
        return metadata.version(DIST_NAME)
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class StatusReport:
    version: str
    """Aegis itself, from the package metadata."""
    signatures: str
    """Fingerprint of the signature content in use (rules, hash lists, model)."""
    content: str
    """``bundled`` or ``update N`` (the installed content version replaces the bundled)."""
    model: str | None
    """Version of the ML model in use, if any."""
    locations: dict[str, str]
    vault_key: str
    """``keyring``, ``file`` or ``not created yet``."""
    vault_key_file: str | None
    updates: dict[str, Any] = field(default_factory=dict)
    """Content version in force, its date and age, the last update check and its result."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def version_line(self) -> str:
        model = f", model {self.model}" if self.model else ""
        return f"aegis {self.version} (signatures {self.signatures}, {self.content}{model})"


def _model_version(model_dir: Path | None) -> str | None:
    if model_dir is None:
        return None
    try:
        manifest = json.loads((model_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = manifest.get("version") if isinstance(manifest, dict) else None
    return str(version) if version is not None else None


def _vault_key(paths: AegisPaths) -> tuple[str, str | None, list[str]]:
    key_file = paths.data_dir / _QUARANTINE_KEY_FILE
    try:
        # bounded: a damaged or hostile vault.json (deep, huge, a FIFO) is an answer, not a hang
        info = load_json_file(paths.quarantine_dir / _VAULT_INFO, max_bytes=64 * 1024)
    except FileNotFoundError:
        info = {}
    except (OSError, ValueError) as exc:
        return "unknown", None, [f"the quarantine vault's {_VAULT_INFO} cannot be read: {exc}"]
    source = info.get("key_source") if isinstance(info, dict) else None
    if source == "keyring":
        return "keyring", None, []
    if source == "file" or key_file.exists():
        return (
            "file",
            str(key_file),
            [
                f"the quarantine key is kept in a file, {key_file} (readable only by you), "
                "not in an OS keyring"
            ],
        )
    return "not created yet", None, []


def collect_status(paths: AegisPaths | None = None) -> StatusReport:
    """The current status of this profile (``$AEGIS_HOME`` or the platform folders)."""
    from .engine import Engine

    paths = paths or AegisPaths.default()
    engine = Engine(paths)
    try:
        signatures = engine.signature_version()[:12]
        warnings = list(engine.warnings)
        content_version = engine.content_version
        model = _model_version(engine.content.model_dir)
    finally:
        engine.close()
    from .updates import content_status
    from .updates.app_service import app_status

    updates = content_status(paths)
    app = app_status()
    if updates.stale:
        warnings.append(
            f"the signatures are {updates.age_days:.0f} days old: run 'aegis update' "
            "(or check the update settings)"
        )
    key, key_file, key_warnings = _vault_key(paths)
    locations = {
        "settings": str(paths.settings_file),
        "config": str(paths.config_dir),
        "data": str(paths.data_dir),
        "quarantine": str(paths.quarantine_dir),
        "history": str(paths.history_file),
        "cache": str(paths.cache_dir),
        "content": str(paths.content_dir),
        "state": str(paths.state_dir),
    }
    return StatusReport(
        version=aegis_version(),
        signatures=signatures,
        content=f"update {content_version}" if content_version else "bundled",
        model=model,
        locations=locations,
        vault_key=key,
        vault_key_file=key_file,
        updates={**updates.to_dict(), **({"app": app} if app else {})},
        warnings=[*warnings, *key_warnings],
    )
