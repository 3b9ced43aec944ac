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
from collections.abc import Mapping
from typing import Any

TELEMETRY_ENV = "ORT_DISABLE_TELEMETRY"


def import_onnxruntime() -> Any:
    """Import onnxruntime with telemetry disabled (the import is deferred: ~30 MB)."""
    os.environ[TELEMETRY_ENV] = "1"
    # One OpenBLAS thread (numpy, imported by onnxruntime): the model scores one row at a
    # time, and an idle BLAS thread in the preload server is one thread more at every fork.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import onnxruntime

    onnxruntime.disable_telemetry_events()
    return onnxruntime


SESSION_OPTIONS: Mapping[str, object] = {
    "intra_op_num_threads": 1,
    "inter_op_num_threads": 1,
    "enable_cpu_mem_arena": False,
    "enable_mem_pattern": False,
    "execution_mode": "ORT_SEQUENTIAL",
    "config:session.intra_op.allow_spinning": "0",
    "config:session.inter_op.allow_spinning": "0",
}
"""The session's options: one thread, no memory arena, no memory patterns, no spinning
threads: the model is small (one row at a time), memory and idle CPU are not. The same
scores as any other setting (bench/ort_session_cost.py measures both)."""


def inference_session(model: bytes, options: Mapping[str, object] | None = None) -> Any:
    """A CPU session made with ``options`` (default :data:`SESSION_OPTIONS`): attributes of
    ``SessionOptions`` by name (enum values by name), ``config:KEY`` for session config
    entries."""
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    for name, value in (SESSION_OPTIONS if options is None else options).items():
        if name.startswith("config:"):
            opts.add_session_config_entry(name.removeprefix("config:"), str(value))
            continue
        if isinstance(value, str):
            enum = {
                "execution_mode": ort.ExecutionMode,
                "graph_optimization_level": ort.GraphOptimizationLevel,
            }[name]
            value = getattr(enum, value)
        setattr(opts, name, value)
    return ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
