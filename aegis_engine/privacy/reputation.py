"""Look-up results as evidence for the decision engine.

A known-bad answer becomes a signature-grade malicious finding (``Cloud.KnownBad.<name>``);
a known-good answer an informational finding with ``details["reputation"] = "known-good"``,
which :class:`~aegis_engine.decision.DecisionEngine` uses to clear an ML-only finding (and
says so in the explanation). :func:`annotate_report` looks up files a local detector
flagged; the cloud detector (``aegis_engine.detectors.cloud``) looks up programs, scripts
and documents with macros.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import PrivacyError
from ..paths import AegisPaths
from ..results import FileReport, Finding, FindingKind, Severity, Verdict
from .lookup import LookupResult, RangeLookup
from .ranges import Reputation

__all__ = [
    "CLOUD_DETECTOR",
    "KNOWN_GOOD",
    "Reputation",
    "annotate_report",
    "finding_for",
    "make_lookup",
]

CLOUD_DETECTOR = "cloud-reputation"
KNOWN_GOOD = "known-good"


def finding_for(result: LookupResult) -> Finding:
    details = {"reputation": result.reputation.value, "sha256": result.sha256}
    if result.reputation is Reputation.KNOWN_BAD:
        name = "Cloud.KnownBad" + (f".{result.name}" if result.name else "")
        return Finding(
            CLOUD_DETECTOR, name, Severity.MALICIOUS, 1.0, FindingKind.SIGNATURE, details
        )
    return Finding(
        CLOUD_DETECTOR, "Cloud.KnownGood", Severity.INFO, 0.0, FindingKind.SIGNATURE, details
    )


def make_lookup(paths: AegisPaths, *, warn: Callable[[str], None] | None = None) -> RangeLookup:
    """The profile's look-up client, over the engine's one network session."""
    from .consent import ConsentStore
    from .wire import transport_for

    consent = ConsentStore.for_paths(paths, warn=warn)
    return RangeLookup.for_paths(paths, consent, lambda: transport_for(paths, consent))


def annotate_report(
    report: FileReport, lookup: RangeLookup, warn: Callable[[str], None] | None = None
) -> None:
    """Add the look-up's finding to each flagged object of ``report`` that has a SHA-256 and
    no cloud finding yet. Failures leave the report as it was (local verdict)."""
    for obj in report.objects:
        if obj.sha256 is None or any(f.detector == CLOUD_DETECTOR for f in obj.findings):
            continue
        if not obj.findings:
            continue
        try:
            result = lookup.lookup(obj.sha256)
        except PrivacyError as exc:
            if warn is not None:
                warn(f"cloud look-up not made for {obj.path}, local verdict only: {exc}")
            return
        if result.reputation is Reputation.UNKNOWN:
            continue
        obj.findings.append(finding_for(result))
        if result.reputation is Reputation.KNOWN_BAD:
            obj.verdict = Verdict.MALICIOUS
