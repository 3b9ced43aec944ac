"""Background update checks for long-running clients (``aegis monitor``, the tray app): one
on start (after a short delay), then every few hours with random jitter, only while the
``update-checks`` consent is granted and a server is configured.

Each round checks the content (:func:`.service.check_for_updates`) and, when the program runs
from an installed bundle (:mod:`.app_layout`) and ``[updates] app`` is not ``off``, the
program's own updates on their own, longer interval (:data:`APP_INTERVAL`, remembered across
restarts in ``app-check.json``): ``stage`` downloads, verifies and stages a new build for the
next start, ``check`` only says there is one. Both go through the same consent gate and
network layer.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import atomic_write
from ..errors import AegisError
from ..net.config import UpdateSettings, update_settings_from
from ..paths import AegisPaths
from ..privacy import ConsentStore
from ..settings import SettingsStore

if TYPE_CHECKING:  # TUF and the network layer are imported at the first check
    from .app_client import AppUpdateResult
    from .client import UpdateResult

__all__ = ["APP_INTERVAL", "Checks", "UpdateScheduler"]

PURPOSE = "update-checks"
APP_INTERVAL = 24 * 3600.0
Check = Callable[..., "UpdateResult"]
AppCheck = Callable[..., "AppUpdateResult"]
OnResult = Callable[["UpdateResult | AppUpdateResult"], None]


@dataclass(frozen=True)
class Checks:
    """What one round found: the content check, and the program's when it was due."""

    content: UpdateResult
    app: AppUpdateResult | None = None


class UpdateScheduler:
    """A non-daemon thread; :meth:`stop` joins it."""

    def __init__(
        self,
        paths: AegisPaths,
        *,
        on_result: OnResult | None = None,
        interval: float = 4 * 3600.0,
        jitter: float = 0.25,
        first_delay: float = 60.0,
        check: Check | None = None,
        check_app: AppCheck | None = None,
        app_interval: float = APP_INTERVAL,
        app_dir: Path | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.paths = paths
        self.interval = interval
        self.jitter = jitter
        self.first_delay = first_delay
        self.app_interval = app_interval
        self.app_dir = app_dir
        self._on_result = on_result
        self._check = check or _check_for_updates
        self._check_app = check_app or _check_for_app_update
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.consent = ConsentStore.for_paths(paths)
        self.app_stamp = paths.data_dir / "app-check.json"

    def next_delay(self) -> float:
        return self.interval * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    def _settings(self) -> UpdateSettings | None:
        """The update settings when checks may run now (consent, a server), else None."""
        if not self.consent.is_granted(PURPOSE):
            return None
        try:
            settings = update_settings_from(SettingsStore(self.paths.settings_file).current.values)
        except AegisError:
            return None
        return settings if settings.server else None

    def run_once(self) -> UpdateResult | None:
        """One round; the content check's result, or None when checks are off or no server
        is configured (nothing is asked then)."""
        checks = self.run_checks()
        return checks.content if checks else None

    def run_checks(self) -> Checks | None:
        """One round: the content check, then the program's when it is due."""
        settings = self._settings()
        if settings is None:
            return None
        result = self._check(self.paths, consent=self.consent)
        self._report(result)
        return Checks(result, self.run_app_check(settings))

    def app_due(self, settings: UpdateSettings) -> bool:
        if settings.app == "off":
            return False
        from .app_layout import AppLayout

        layout = AppLayout(self.app_dir) if self.app_dir else AppLayout.of_running()
        if layout is None or not layout.is_installed():
            return False  # a source tree, a package manager's install: not ours to update
        try:
            last = float(json.loads(self.app_stamp.read_text())["checked"])
        except (OSError, ValueError, KeyError, TypeError):
            return True
        return not 0 <= time.time() - last < self.app_interval

    def run_app_check(self, settings: UpdateSettings | None = None) -> AppUpdateResult | None:
        """The program's own check when it is due (None otherwise)."""
        settings = settings or self._settings()
        if settings is None or not self.app_due(settings):
            return None
        result = self._check_app(
            self.paths, consent=self.consent, app_dir=self.app_dir, stage=settings.app == "stage"
        )
        if result.result != "failed":  # a failed check is tried again at the next round
            stamp = {"checked": time.time(), "result": result.result, "version": result.version}
            with contextlib.suppress(OSError):
                atomic_write(self.app_stamp, json.dumps(stamp).encode())
        self._report(result)
        return result

    def _report(self, result: UpdateResult | AppUpdateResult) -> None:
        if self._on_result is not None:
            self._on_result(result)

    def _run(self) -> None:
        delay = self.first_delay
        while not self._stop.wait(delay):
            with contextlib.suppress(Exception):  # a failed check never stops protection
                self.run_checks()
            delay = self.next_delay()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="aegis-updates", daemon=False)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


def _check_for_updates(*args: object, **kwargs: object) -> UpdateResult:
    """``service.check_for_updates``, imported at the first check (TUF, the network layer:
    ~30 MB that an idle monitor or tray app does not hold until then)."""
    from .service import check_for_updates

    return check_for_updates(*args, **kwargs)  # type: ignore[arg-type]


def _check_for_app_update(*args: object, **kwargs: object) -> AppUpdateResult:
    """``app_service.check_for_app_update``, imported at the first check of the program."""
    from .app_service import check_for_app_update

    return check_for_app_update(*args, **kwargs)  # type: ignore[arg-type]
