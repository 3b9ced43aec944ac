"""What the empty ICU data library (icu-data-stub.c) changes in Qt, side by side with the
full one: runs the same probe twice, with this venv's PySide6 as it is and with a copy whose
``libicudata`` is the stub, and prints both outputs and the lines that differ.

    QT_QPA_PLATFORM=offscreen .venv/bin/python packaging/linux/check_icu_stub.py

Needs a C compiler (cc). Nothing is written outside a temporary folder.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

PROBE = r"""
import functools, sys, time
from PySide6.QtCore import (QCollator, QDateTime, QEventLoop, QLocale, QTextBoundaryFinder,
                            QTimeZone)
from PySide6.QtWidgets import QApplication, QFileDialog, QFileSystemModel, QLabel

app = QApplication(sys.argv)
def spin(n):
    for _ in range(n):
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 50)
        time.sleep(0.05)
c = QCollator(QLocale("de_DE"))
c.setNumericMode(True)
words = ["b10", "a", "B2", "b2", "\u00e9"]
print("collator order:", sorted(words, key=functools.cmp_to_key(c.compare)))
print("upper tr/de:", QLocale("tr_TR").toUpper("istanbul"), QLocale("de_DE").toUpper("stra\u00dfe"))
print("lower:", QLocale("en_US").toLower("\u0130STANBUL ABC"))
paris = QTimeZone(b"Europe/Paris")
print("time zone name:", repr(paris.displayName(QDateTime.currentDateTime())))
print("date:", QLocale("fr_FR").toString(QDateTime.fromSecsSinceEpoch(0, paris),
      QLocale.FormatType.LongFormat))
f = QTextBoundaryFinder(QTextBoundaryFinder.BoundaryType.Word, "hello world, \u00e7a va?")
print("word boundary:", f.toNextBoundary(), f.toNextBoundary())
m = QFileSystemModel()
m.setRootPath("/usr")
spin(20)
m.sort(0)
spin(10)
idx = m.index("/usr")
print("file model:", [m.index(i, 0, idx).data() for i in range(m.rowCount(idx))])
d = QFileDialog(None, "x", "/usr")
d.setOption(QFileDialog.Option.DontUseNativeDialog, True)
d.show()
spin(10)
d.close()
print("file dialog: shown and closed")
label = QLabel("Stra\u00dfe \u00e7a \u65e5\u672c \u0627\u0644\u0639\u0631\u0628\u064a\u0629")
label.show()
spin(2)
print("label size:", label.sizeHint().width(), label.sizeHint().height())
"""


def main() -> int:
    import PySide6

    pyside = Path(PySide6.__file__).parent
    icu = sorted((pyside / "Qt" / "lib").glob("libicudata.so.*"))
    if not icu:
        print("check_icu_stub: this PySide6 has no libicudata")
        return 1
    major = icu[0].name.split(".so.")[1].split(".")[0]
    env = {**os.environ, "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen")}
    with tempfile.TemporaryDirectory(prefix="icu-stub-") as tmp:
        copy = Path(tmp) / "site"
        copy.mkdir()
        shutil.copytree(pyside, copy / "PySide6", symlinks=True)
        shiboken = pyside.parent / "shiboken6"
        if shiboken.is_dir():
            shutil.copytree(shiboken, copy / "shiboken6", symlinks=True)
        stub = copy / "PySide6" / "Qt" / "lib" / icu[0].name
        stub.unlink()
        subprocess.run(
            ["cc", "-shared", "-fPIC", "-O2", "-s", f"-DICU_MAJOR={major}",
             f"-Wl,-soname,libicudata.so.{major}", "-o", str(stub),
             str(HERE / "icu-data-stub.c")],
            check=True,
        )  # fmt: skip
        outputs = {}
        for name, path in (("full ICU data", ""), ("empty ICU data", str(copy))):
            run_env = {**env, "PYTHONPATH": path} if path else env
            proc = subprocess.run(
                [sys.executable, "-c", PROBE],
                capture_output=True,
                text=True,
                env=run_env,
                timeout=120,
                check=False,
            )
            outputs[name] = proc.stdout.splitlines()
            print(f"== {name} (exit {proc.returncode})")
            print(proc.stdout + proc.stderr)
    full, empty = outputs["full ICU data"], outputs["empty ICU data"]
    diff = [(a, b) for a, b in zip(full, empty, strict=False) if a != b]
    print(f"== {len(diff)} of {len(full)} lines differ")
    for a, b in diff:
        print(f"  full:  {a}\n  empty: {b}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
