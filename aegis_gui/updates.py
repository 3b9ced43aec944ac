"""Check for updates from the tray app: the engine's update client, in a worker op.

Asks the consent store first (update checks can be turned off in Settings ▸ Privacy); the
engine then checks the configured server, verifies and installs what is new, and the running
engine picks the new content up before its next scan. Run from an installed bundle, the same
check also stages a new version of the program itself for the next start.
"""

from __future__ import annotations

from aegis_engine.errors import UpdateError
from aegis_engine.paths import AegisPaths
from aegis_engine.privacy import ConsentStore


def check_for_updates(
    consent: ConsentStore, server: str = "", paths: AegisPaths | None = None
) -> str:
    """Runs in a worker op. Raises ConsentRequired when update checks are off, UpdateError
    when the check failed or was refused (the content in use stays in use); returns the line
    to show otherwise."""
    from aegis_engine.updates import check_for_updates as engine_check

    consent.require("update-checks")
    paths = paths or AegisPaths.default()
    result = engine_check(paths, server=server or None, consent=consent)
    app = _app_line(paths, server, consent)
    if result.result == "updated":
        return f"Aegis updated its signatures to version {result.version}.{app}"
    if result.result == "current":
        return f"Aegis is up to date (signatures version {result.version}).{app}"
    verb = "refused" if result.result == "refused" else "failed"
    raise UpdateError(
        f"Update {verb}: {result.reason}. Aegis keeps scanning with version {result.version}."
        + app
    )


def _app_line(paths: AegisPaths, server: str, consent: ConsentStore) -> str:
    """The program's own update (an installed bundle only): staged for the next start."""
    from aegis_engine.updates.app_service import check_for_app_update

    line = app_update_line(check_for_app_update(paths, server=server or None, consent=consent))
    return f" {line}" if line else ""


def app_update_line(app: object) -> str:
    """What the tray says about a check of the program's own updates ("" for nothing new)."""
    outcome = getattr(app, "result", None)
    version = getattr(app, "version", "")
    if outcome == "staged":
        return f"Aegis {version} is ready: restart Aegis to apply it."
    if outcome == "available":
        return f"Aegis {version} is available: use Check for updates to install it."
    if outcome in ("refused", "failed"):
        return f"The new version of Aegis was not installed: {getattr(app, 'reason', '')}."
    return ""
