"""Child process of unpack_packer: ``python -m aegis_engine.scanning.emulate_child IN OUT``
emulates the packed PE ``IN`` with unipacker and writes the unpacked image to ``OUT``.
Exit status 0 when ``OUT`` was written. Its output is discarded by the parent."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import threading


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        return 2
    src, dst = argv[1], argv[2]
    with contextlib.redirect_stdout(io.StringIO()):
        from unipacker.core import Sample, SimpleClient, UnpackerEngine

        sample = Sample(src)
        engine = UnpackerEngine(sample, dst)
        done = threading.Event()
        engine.register_client(SimpleClient(done))
        threading.Thread(target=engine.emu, daemon=True).start()
        done.wait()  # the parent's time limit ends a run that never finishes
    return 0 if os.path.exists(dst) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
