"""Detectors: each looks at one object and reports findings (see base.Detector)."""

from .base import Buffer, Detector, ScanObject

__all__ = ["Buffer", "Detector", "ScanObject"]
