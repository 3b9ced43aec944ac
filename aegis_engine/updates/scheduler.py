"""Background update checks for long-running clients (``aegis monitor``, the tray app): one
on start (after a short delay), then every few hours with random jitter, only while the
``update-checks`` consent is granted and a server is configured."""

from __future__ import annotations

import contextlib
import random
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import AegisError
from ..net.config import update_settings_from
from ..paths import AegisPaths
from ..privacy import ConsentStore
from ..settings import SettingsStore

if TYPE_CHECKING:
    from .client import UpdateResult

__all__ = ["UpdateScheduler"]

PURPOSE = "update-checks"
Check = Callable[..., "UpdateResult"]


class UpdateScheduler:
    """A non-daemon thread; :meth:`stop` joins it."""

    def __init__(
        self,
        paths: AegisPaths,
        *,
        on_result: Callable[[UpdateResult], None] | None = None,
        interval: float = 4 * 3600.0,
        jitter: float = 0.25,
        first_delay: float = 60.0,
        check: Check | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.paths = paths
        self.interval = interval
        self.jitter = jitter
        self.first_delay = first_delay
        self._on_result = on_result
        self._check = check or _check_for_updates
        self._rng = rng or random.Random()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.consent = ConsentStore.for_paths(paths)

    def next_delay(self) -> float:
        return self.interval * (1.0 + self._rng.uniform(-self.jitter, self.jitter))

    def run_once(self) -> UpdateResult | None:
        """One check, or None when checks are off or no server is configured."""
        if not self.consent.is_granted(PURPOSE):
            return None
        try:
            values = SettingsStore(self.paths.settings_file).current.values
            server = update_settings_from(values).server
        except AegisError:
            server = None
        if not server:
            return None
        result = self._check(self.paths, consent=self.consent)
        if self._on_result is not None:
            self._on_result(result)
        return result

    def _run(self) -> None:
        delay = self.first_delay
        while not self._stop.wait(delay):
            with contextlib.suppress(Exception):  # a failed check never stops protection
                self.run_once()
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
