"""The model manifest (``resources/model/manifest.json``) and integrity-checked model loading.

The manifest names the ONNX file and pins its SHA-256; :func:`load_verified_model` reads the
model bytes once, checks them against the manifest and hands back those same bytes, so what
was verified is exactly what onnxruntime later loads (no re-read, no swap in between).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ContentError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
MAX_MODEL_BYTES = 16 * 1024 * 1024
"""A model file larger than this is refused without being read (the shipped one is < 5 MB)."""


class ModelError(ContentError):
    """The ML model or its manifest is missing, unreadable or inconsistent."""


class ModelIntegrityError(ModelError):
    """The model file's SHA-256 differs from the manifest's: tampered or corrupted."""


@dataclass(frozen=True)
class Thresholds:
    """Scores at or above ``suspicious`` / ``malicious`` make a finding of that severity."""

    suspicious: float
    malicious: float

    def to_dict(self) -> dict[str, float]:
        return {"suspicious": self.suspicious, "malicious": self.malicious}


@dataclass(frozen=True)
class ModelManifest:
    version: str
    model_file: str
    sha256: str
    size: int
    feature_version: int
    features: tuple[str, ...]
    thresholds: Thresholds
    input_name: str
    output_name: str
    score_column: int
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Everything else in the file (training facts, metrics), kept for reports."""

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelManifest:
        try:
            if d["format"] != MANIFEST_FORMAT:
                raise ModelError(f"unsupported model manifest format {d['format']!r}")
            th = d["thresholds"]
            thresholds = Thresholds(float(th["suspicious"]), float(th["malicious"]))
            features = d["features"]
            if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
                raise ModelError("manifest 'features' must be a list of names")
            model_file = str(d["model_file"])
            if Path(model_file).name != model_file or model_file in ("", ".", ".."):
                raise ModelError(f"manifest model_file must be a plain file name: {model_file!r}")
            sha = str(d["sha256"]).lower()
            if len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha):
                raise ModelError("manifest sha256 is not a SHA-256 hex digest")
            known = {
                "format",
                "version",
                "model_file",
                "sha256",
                "size",
                "feature_version",
                "features",
                "thresholds",
                "input_name",
                "output_name",
                "score_column",
            }
            return cls(
                version=str(d["version"]),
                model_file=model_file,
                sha256=sha,
                size=int(d["size"]),
                feature_version=int(d["feature_version"]),
                features=tuple(features),
                thresholds=thresholds,
                input_name=str(d["input_name"]),
                output_name=str(d["output_name"]),
                score_column=int(d["score_column"]),
                extra={k: v for k, v in d.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelError(f"model manifest is invalid: {type(exc).__name__}: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "version": self.version,
            "model_file": self.model_file,
            "sha256": self.sha256,
            "size": self.size,
            "feature_version": self.feature_version,
            "features": list(self.features),
            "thresholds": self.thresholds.to_dict(),
            "input_name": self.input_name,
            "output_name": self.output_name,
            "score_column": self.score_column,
        }
        out.update(self.extra)
        return out


def load_manifest(model_dir: Path) -> ModelManifest:
    path = model_dir / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelError(f"model manifest not found: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"model manifest {path} is unreadable: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelError(f"model manifest {path} is not a JSON object")
    return ModelManifest.from_dict(raw)


def load_verified_model(
    model_dir: Path, *, feature_version: int, features: Sequence[str]
) -> tuple[ModelManifest, bytes]:
    """The manifest and the model bytes, after checking size, SHA-256 and feature list
    (the model's input features must all be among the ``features`` this engine computes).

    Raises :class:`ModelError` (missing or unusable) or :class:`ModelIntegrityError`.
    """
    manifest = load_manifest(model_dir)
    unknown = [f for f in manifest.features if f not in set(features)]
    if manifest.feature_version != feature_version or unknown or not manifest.features:
        raise ModelError(
            f"model {manifest.version} expects feature set v{manifest.feature_version} "
            f"({len(manifest.features)} features"
            + (f", {len(unknown)} unknown here, e.g. {unknown[0]!r}" if unknown else "")
            + f"); this engine computes v{feature_version} ({len(features)} features)"
        )
    if len(set(manifest.features)) != len(manifest.features):
        raise ModelError(f"model {manifest.version} lists a feature twice")
    path = model_dir / manifest.model_file
    try:
        size = path.stat().st_size
        if size > MAX_MODEL_BYTES:
            raise ModelIntegrityError(f"model file {path} is too large ({size} bytes)")
        blob = path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"model file not found: {path}") from exc
    except OSError as exc:
        raise ModelError(f"model file {path} is unreadable: {exc}") from exc
    digest = hashlib.sha256(blob).hexdigest()
    if digest != manifest.sha256 or len(blob) != manifest.size:
        raise ModelIntegrityError(
            f"model file {path} does not match its manifest (sha256 {digest[:16]}..., "
            f"expected {manifest.sha256[:16]}...): it may have been tampered with"
        )
    return manifest, blob


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
