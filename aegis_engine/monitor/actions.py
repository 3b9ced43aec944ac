"""The one seam between the monitor and the rest of Aegis: ``handle(report) -> action dict``.

The dispatcher passes every non-clean :class:`~aegis_engine.results.FileReport` to a
:data:`ReportHandler` and merges the mapping it returns into the event. The default,
:class:`ResponderHandler`, hands the report to the engine's
:class:`~aegis_engine.response.Responder`: the decision engine gives verdict, explanation and
policy action; the responder carries it out (quarantine into the vault, a pending question
for ``ask``) and records it in the history - the same path ``aegis scan --quarantine`` takes.

Keys of the returned mapping: ``verdict`` and ``action`` (always; ``action`` is what was done:
``quarantine``, ``ask``, ``report`` or ``none``), ``explanation`` (lines), ``detections``
(names), ``outcome`` (one line on what happened), and whatever else belongs in the event
(``policy_action``, ``quarantine_id``, ``action_error``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..decision import Action
from ..response import Responder
from ..results import FileReport

__all__ = ["ReportHandler", "ResponderHandler", "report_only"]

ReportHandler = Callable[[FileReport], Mapping[str, Any]]


def report_only(report: FileReport) -> Mapping[str, Any]:
    """The handler with no policy at all: report the scanner's verdict, do nothing."""
    return {
        "verdict": report.verdict.value,
        "action": "report",
        "detections": sorted({f.name for f in report.findings}),
    }


class ResponderHandler:
    """Decide and act through the engine's responder.

    ``before_action(path)`` is called first for every threat, so that the ransomware shield
    does not count Aegis's own quarantine moves as files destroyed.
    """

    def __init__(
        self,
        responder: Responder,
        *,
        before_action: Callable[[str], None] | None = None,
        report_only_note: str | None = None,
    ) -> None:
        self.responder = responder
        self.before_action = before_action
        self.report_only_note = report_only_note
        """Replaces the responder's note when it did not act because actions are off."""

    def __call__(self, report: FileReport) -> Mapping[str, Any]:
        if self.before_action is not None and report.verdict.is_threat:
            self.before_action(report.path)
        response = self.responder.respond(report)
        fd = response.decision
        out: dict[str, Any] = dict(response.to_dict())
        out["verdict"] = fd.verdict.value
        out["detections"] = list(dict.fromkeys(r for d in fd.decisions for r in d.rules))
        if response.note:
            out["outcome"] = response.note
        if (
            self.report_only_note is not None
            and response.taken is Action.REPORT
            and fd.action is Action.QUARANTINE
            and response.error is None
        ):
            out["outcome"] = self.report_only_note
        return out
