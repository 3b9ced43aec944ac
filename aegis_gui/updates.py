"""Check for updates: asks the consent store first; there is no update client yet.

Signed updates (TUF metadata, pinned HTTPS) are a later issue. Until then this check says so
honestly, and it sends nothing: no network code exists in the tray app.
"""

from __future__ import annotations

from aegis_engine.errors import AegisError
from aegis_engine.privacy import ConsentStore


class UpdatesUnavailable(AegisError):
    """This build has no update client."""


def check_for_updates(consent: ConsentStore, server: str = "") -> str:
    """Runs in a worker op. Raises ConsentRequired when update checks are off."""
    consent.require("update-checks")
    where = server or "the built-in update server"
    raise UpdatesUnavailable(
        f"This version of Aegis cannot download updates yet (no update client for {where}); "
        "it uses the signatures it was installed with. Nothing was sent."
    )
