"""The one way Aegis loads onnxruntime: with its telemetry off.

onnxruntime's Linux wheels carry Microsoft's 1DS telemetry client: left alone, the first
session writes a device id and an event queue under ``~/.cache/Microsoft/DeveloperTools`` to
be uploaded later. Nothing may leave this machine without the user's opt-in, so the variable
that turns it off is set before onnxruntime is imported (it is read then; calling
``disable_telemetry_events()`` afterwards does not stop it). tests/test_privacy_local_only.py
proves that a scan which loads the model writes nothing outside AEGIS_HOME.
"""

from __future__ import annotations

import os
from typing import Any

TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"


def import_onnxruntime() -> Any:
    """Import onnxruntime with telemetry disabled (the import is deferred: ~30 MB)."""
    os.environ[TELEMETRY_ENV] = "1"
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    return onnxruntime


def inference_session(model: bytes) -> Any:
    """A CPU session with one thread, no memory arena: the model is small, memory is not."""
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
