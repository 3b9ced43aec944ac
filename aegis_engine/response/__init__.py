"""What Aegis does about a scanned file, and about quarantined items: the outcome service.

:class:`OutcomeService` (built by :meth:`aegis_engine.Engine.outcomes`) decides, acts and
records - respond, quarantine, keep, allow, restore, delete, purge - and returns typed
results (:class:`Response`, :class:`RestoreResult`, :class:`RemoveResult`).
"""

from __future__ import annotations

from .results import Mode, RemoveResult, Response, RestoreResult
from .service import AskUser, OutcomeService, finalize

__all__ = [
    "AskUser",
    "Mode",
    "OutcomeService",
    "RemoveResult",
    "Response",
    "RestoreResult",
    "finalize",
]
