"""The ML detector: scores PE files with the bundled ONNX model.

* ``make_detector`` reads the manifest and the model bytes and checks the SHA-256 (and the
  feature list) before anything else; a missing, tampered or incompatible model makes it warn
  once through ``ctx.warn`` and return None, so the engine scans on without ML.
* onnxruntime is imported, and the session created from the verified bytes, only when the
  first PE object is scored; the session (one intra-op thread) is then shared by every
  worker thread (``InferenceSession.run`` is thread-safe).
* Features are header-only (:mod:`.features`): cost does not grow with file size, and an
  object that is not a parseable PE image gets no ML finding.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results import Finding, FindingKind, Severity
from .features import FEATURE_NAMES, FEATURE_VERSION, FeatureResult, columns_for, extract
from .manifest import ModelError, ModelManifest, load_verified_model

if TYPE_CHECKING:
    from ..detectors.base import ScanObject
    from ..detectors.registry import DetectorContext

DETECTOR_NAME = "ml"
NAME_SUSPICIOUS = "ML.PE.Suspicious"
NAME_MALICIOUS = "ML.PE.Malicious"
PE_FILETYPE = "PE"


class ModelWanted(BaseException):
    """Raised instead of making the model's session in a scan worker forked from the preload
    server before the server made it (``MLDetector.defer_session``): the worker hands its
    file back and leaves, and the pool's next workers share one session made in the server,
    instead of each worker holding its own (onnxruntime and the session: ~60 MiB each).

    A ``BaseException`` so that it passes the scanner's ``except Exception`` around each
    detector (a detector's fault costs one object; this must cost nothing)."""


class MLDetector:
    """Scores PE objects; thread-safe. Build it with :func:`make_detector` or
    :meth:`from_model_dir`."""

    name = DETECTOR_NAME
    hashes_needed: frozenset[str] = frozenset()

    def __init__(
        self, manifest: ModelManifest, model_bytes: bytes, warn: Callable[[str], None]
    ) -> None:
        self.manifest = manifest
        self._model_bytes: bytes | None = model_bytes
        self._warn = warn
        self._lock = threading.Lock()
        self._session: Any = None
        self._failed = False
        self.defer_session = False
        """Raise :class:`ModelWanted` instead of making the session here."""
        self._thresholds = manifest.thresholds.to_dict()
        self._columns = list(columns_for(manifest.features))
        """Positions of the model's inputs in :data:`FEATURE_NAMES` (the manifest's order)."""

    @classmethod
    def from_model_dir(cls, model_dir: Path, warn: Callable[[str], None]) -> MLDetector:
        """Raises :class:`~.manifest.ModelError` when the model is missing or not intact."""
        manifest, blob = load_verified_model(
            model_dir, feature_version=FEATURE_VERSION, features=FEATURE_NAMES
        )
        return cls(manifest, blob, warn)

    @property
    def version(self) -> str:
        """The model's SHA-256: a new model invalidates cached scan results."""
        return self.manifest.sha256

    @property
    def session_loaded(self) -> bool:
        return self._session is not None

    # Scoring -----------------------------------------------------------------------------

    def _get_session(self) -> Any:
        session = self._session
        if session is not None or self._failed:
            return session
        if self.defer_session:
            raise ModelWanted
        with self._lock:
            if self._session is None and not self._failed:
                try:
                    from .runtime import inference_session

                    if self._model_bytes is None:
                        raise ValueError("the verified model bytes were already released")
                    session = inference_session(self._model_bytes)
                    width = session.get_inputs()[0].shape[-1]
                    if width != len(self._columns):
                        raise ValueError(
                            f"its input takes {width} features, its manifest lists "
                            f"{len(self._columns)}"
                        )
                    self._session = session
                except Exception as exc:  # no onnxruntime, or a model it cannot run
                    self._failed = True
                    self._warn(f"ML detection disabled: the model could not be loaded ({exc})")
                finally:
                    self._model_bytes = None  # verified bytes are needed only once
            return self._session

    def score_vectors(self, rows: Sequence[Sequence[float]]) -> list[float] | None:
        """Malware probabilities for feature rows (each one value per name in
        :data:`FEATURE_NAMES`, as :func:`~.features.extract` gives them; one ``session.run``
        for all), or None when the model could not be loaded."""
        if not rows:
            return []
        session = self._get_session()
        if session is None:
            return None
        import numpy as np

        x = np.asarray(rows, dtype=np.float32).reshape(len(rows), len(FEATURE_NAMES))
        x = np.ascontiguousarray(x[:, self._columns])
        out = session.run([self.manifest.output_name], {self.manifest.input_name: x})[0]
        return [float(v) for v in out[:, self.manifest.score_column]]

    def finding_for(self, score: float) -> Finding | None:
        th = self.manifest.thresholds
        if score >= th.malicious:
            name, severity = NAME_MALICIOUS, Severity.MALICIOUS
        elif score >= th.suspicious:
            name, severity = NAME_SUSPICIOUS, Severity.SUSPICIOUS
        else:
            return None
        return Finding(
            detector=self.name,
            name=name,
            severity=severity,
            score=score,
            kind=FindingKind.ML,
            details={
                "score": score,
                "thresholds": dict(self._thresholds),
                "model_version": self.manifest.version,
                "model_sha256": self.manifest.sha256,
            },
        )

    # Detector protocol ---------------------------------------------------------------------

    def scan(self, obj: ScanObject) -> list[Finding]:
        return self.scan_batch([obj])[0]

    def scan_batch(self, objs: Sequence[ScanObject]) -> list[list[Finding]]:
        """Findings for several objects with one model call (for scans with many PE files)."""
        results: list[list[Finding]] = [[] for _ in objs]
        picked: list[tuple[int, FeatureResult]] = []
        for i, obj in enumerate(objs):
            if obj.filetype != PE_FILETYPE:
                continue
            feats = extract(obj.data, obj.size)
            if feats.ok:
                picked.append((i, feats))
        if not picked:
            return results
        scores = self.score_vectors([f.values for _, f in picked])
        if scores is None:
            return results
        for (i, _), score in zip(picked, scores, strict=True):
            finding = self.finding_for(score)
            if finding is not None:
                results[i].append(finding)
        return results


def make_detector(ctx: DetectorContext) -> MLDetector | None:
    """The registry's factory: None (after one ``ctx.warn``) when the model is unusable."""
    model_dir = ctx.content.model_dir
    if model_dir is None:
        ctx.warn("ML detection disabled: no model folder found in the content sources")
        return None
    try:
        return MLDetector.from_model_dir(model_dir, ctx.warn)
    except ModelError as exc:
        ctx.warn(f"ML detection disabled: {exc}")
        return None
