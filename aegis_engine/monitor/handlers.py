"""The seam between the monitor and the outcome service: ``handle(report) -> fields``.

The dispatcher passes every non-clean :class:`~aegis_engine.results.FileReport` to a
:data:`ReportHandler` and merges the mapping it returns into the event. The default,
:class:`OutcomeHandler`, hands the report to the engine's
:class:`~aegis_engine.response.OutcomeService` - decide, act as the monitor's mode allows,
record once - the same path ``aegis scan`` and the tray app take.

Keys of the returned mapping: ``verdict`` and ``action`` (always; ``action`` is what was done:
``quarantine``, ``ask``, ``report`` or ``none``), ``explanation`` (lines), ``detections``
(names), ``outcome`` (one line on what happened), and whatever else belongs in the event
(``policy_action``, ``quarantine_id``, ``action_error``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..response import Mode, OutcomeService, Response
from ..results import FileReport

__all__ = ["OutcomeHandler", "ReportHandler", "report_only", "response_fields"]

ReportHandler = Callable[[FileReport], Mapping[str, Any]]


def report_only(report: FileReport) -> Mapping[str, Any]:
    """The handler with no policy at all (tests): the scanner's verdict, nothing done."""
    return {
        "verdict": report.verdict.value,
        "action": "report",
        "detections": sorted({f.name for f in report.findings}),
    }


def response_fields(response: Response) -> dict[str, Any]:
    """An event's fields for one :class:`Response` (the monitor and the tray app)."""
    fd = response.decision
    out: dict[str, Any] = dict(response.to_dict())
    out["verdict"] = fd.verdict.value
    out["detections"] = list(dict.fromkeys(r for d in fd.decisions for r in d.rules))
    if response.note or response.action_line:
        out["outcome"] = response.note or response.action_line
    return out


class OutcomeHandler:
    """Decide and act through the engine's outcome service.

    ``before_action(path)`` is called first for every threat, so that the ransomware shield
    does not count Aegis's own quarantine moves as files destroyed.
    """

    def __init__(
        self,
        outcomes: OutcomeService,
        *,
        mode: Mode,
        before_action: Callable[[str], None] | None = None,
    ) -> None:
        self.outcomes = outcomes
        self.mode = mode
        self.before_action = before_action

    def __call__(self, report: FileReport) -> Mapping[str, Any]:
        if self.before_action is not None and report.verdict.is_threat:
            self.before_action(report.path)
        return response_fields(self.outcomes.respond(report, mode=self.mode, client="monitor"))
