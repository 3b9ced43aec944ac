"""Builds the detector set: built-in factories, then third-party ones from entry points."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import entry_points

from ..config import ScanLimits
from ..content import ContentSources
from ..errors import ContentError
from ..paths import AegisPaths
from .base import Detector

ENTRY_POINT_GROUP = "aegis.detectors"
TEST_FACTORIES_ENV = "AEGIS_TEST_DETECTORS"
"""For tests only: comma-separated ``module:callable`` factories added after the others
(read only when set; lets a test register a detector without an installed entry point)."""

# "module:function" of each built-in factory, in the order detectors run.
BUILTIN_FACTORIES: tuple[str, ...] = (
    "aegis_engine.detectors.eicar:make_detector",
    "aegis_engine.detectors.hashes:make_detector",
    "aegis_engine.detectors.yara_rules:make_detector",
    "aegis_engine.ml.detector:make_detector",
    "aegis_engine.detectors.cloud:make_detector",  # None unless cloud-lookup is allowed
)


@dataclass(frozen=True)
class DetectorContext:
    """What a detector factory may use to build its detector."""

    paths: AegisPaths
    content: ContentSources
    limits: ScanLimits
    warn: Callable[[str], None]
    fault: Callable[[str], None] | None = None
    """Told about content that could not be used (a list or rule file skipped, a detector
    disabled): a warning that also makes a scan that found nothing end with exit 2."""

    def report_fault(self, message: str) -> None:
        (self.fault or self.warn)(message)


DetectorFactory = Callable[[DetectorContext], Detector | None]


def _resolve(spec: str) -> DetectorFactory:
    module, _, attr = spec.partition(":")
    factory: DetectorFactory = getattr(importlib.import_module(module), attr)
    return factory


def factories_from_env() -> tuple[str, ...]:
    """The test-only factories named in ``$AEGIS_TEST_DETECTORS`` (empty when unset)."""
    value = os.environ.get(TEST_FACTORIES_ENV, "")
    return tuple(s.strip() for s in value.split(",") if s.strip())


def load_detectors(
    ctx: DetectorContext, *, plugins: bool = True, extra: Sequence[str] = ()
) -> list[Detector]:
    """Instantiate every detector. A factory returning None opts out (e.g. nothing to load);
    a factory raising ContentError is reported through ``ctx.warn`` and skipped.
    ``extra`` names further ``module:callable`` factories (see :func:`factories_from_env`)."""
    factories: list[tuple[str, DetectorFactory]] = [(s, _resolve(s)) for s in BUILTIN_FACTORIES]
    for spec in extra:
        try:
            factories.append((spec, _resolve(spec)))
        except Exception as exc:
            ctx.warn(f"detector {spec!r} could not be loaded: {exc}")
    if plugins:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                factories.append((ep.name, ep.load()))
            except Exception as exc:  # a broken plugin must not stop scanning
                ctx.warn(f"detector plugin {ep.name!r} could not be loaded: {exc}")
    detectors: list[Detector] = []
    for spec, factory in factories:
        try:
            det = factory(ctx)
        except ContentError as exc:
            ctx.report_fault(f"detector {spec} disabled: {exc}")
            continue
        if det is not None:
            detectors.append(det)
    return detectors
