"""Render the app icon (resources/icons/aegis.svg) to PNGs at the freedesktop hicolor sizes.

    python packaging/linux/render_icons.py OUT_DIR

writes OUT_DIR/hicolor/{16,22,24,32,48,64,128,256,512}x…/apps/aegis.png and
OUT_DIR/hicolor/scalable/apps/aegis.svg. Qt's SVG renderer draws them (the build already has
PySide6), offscreen: no screen needed.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

SIZES = (16, 22, 24, 32, 48, 64, 128, 256, 512)
ROOT = Path(__file__).resolve().parents[2]


def render(out: Path, svg: Path = ROOT / "resources" / "icons" / "aegis.svg") -> list[Path]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication.instance() or QGuiApplication(["render_icons"])
    renderer = QSvgRenderer(str(svg))
    if not renderer.isValid():
        raise SystemExit(f"render_icons: {svg} is not a valid SVG")
    written = []
    for size in SIZES:
        image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        image.fill(Qt.GlobalColor.transparent)
        painter = QPainter(image)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(painter)
        painter.end()
        target = out / "hicolor" / f"{size}x{size}" / "apps" / "aegis.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        if not image.save(str(target), "PNG"):
            raise SystemExit(f"render_icons: cannot write {target}")
        written.append(target)
    scalable = out / "hicolor" / "scalable" / "apps" / "aegis.svg"
    scalable.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(svg, scalable)
    written.append(scalable)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: render_icons.py OUT_DIR")
    for path in render(Path(sys.argv[1])):
        print(path)
