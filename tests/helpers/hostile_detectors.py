"""Test-only detector plug-ins that misbehave on purpose, registered through
``$AEGIS_TEST_DETECTORS`` (``helpers.hostile_detectors:make_detector``; pytest puts the
tests folder on ``sys.path``, and the scan workers get the same ``sys.path``).

Each acts only on a file that starts with its marker, so every other file scans normally.
"""

from __future__ import annotations

import os
import subprocess
import time
from typing import Any

SPEC = "helpers.hostile_detectors:make_detector"
SLEEP = b"AEGIS-TEST-SLEEP-FOREVER"
ALLOCATE = b"AEGIS-TEST-ALLOCATE-WITHOUT-BOUND"
ABORT = b"AEGIS-TEST-ABORT"
SLOW = b"AEGIS-TEST-SLOW"
"""Takes 0.2 s, and appends the pid of the process that scanned it to ``$AEGIS_TEST_SLOW_LOG``."""
TRUNCATE = b"AEGIS-TEST-TRUNCATE-ME"
"""Another process truncates the file to 0 bytes during the scan; then every page of the
content is read (with a mapping of the file that raises SIGBUS)."""


class HostileDetector:
    name = "test-hostile"
    version = "1"
    hashes_needed: frozenset[str] = frozenset()

    def scan(self, obj: Any) -> list[Any]:
        head = bytes(obj.data[:64])
        if head.startswith(SLEEP):
            while True:
                time.sleep(3600)
        if head.startswith(ALLOCATE):
            hoard = []
            while True:
                hoard.append(bytearray(16 << 20))
        if head.startswith(ABORT):
            os.abort()
        if head.startswith(SLOW):
            time.sleep(0.2)
            with open(os.environ["AEGIS_TEST_SLOW_LOG"], "a") as log:
                log.write(f"{os.getpid()}\n")
        if head.startswith(TRUNCATE) and obj.disk_path:
            subprocess.run(["truncate", "-s", "0", obj.disk_path], check=True)
            total = 0
            for offset in range(0, obj.size, 4096):
                total += obj.data[offset]
        return []


def make_detector(_ctx: object) -> HostileDetector:
    return HostileDetector()


PROBE_SPEC = "helpers.hostile_detectors:make_probe"


class ModuleProbe:
    """Says, as a finding on each PE file, whether onnxruntime is loaded in the process that
    scans it (the ML detector runs before test detectors): proves the model was used."""

    name = "test-probe"
    version = "1"
    hashes_needed: frozenset[str] = frozenset()

    def scan(self, obj: Any) -> list[Any]:
        import sys

        from aegis_engine.results import Finding, Severity

        if obj.filetype == "PE" and "onnxruntime" in sys.modules:
            return [Finding(self.name, "onnxruntime-loaded", Severity.SUSPICIOUS)]
        return []


def make_probe(_ctx: object) -> ModuleProbe:
    return ModuleProbe()
