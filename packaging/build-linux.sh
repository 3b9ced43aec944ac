#!/usr/bin/env bash
# Build the Linux bundle and its tar.xz from a clean clone, in one command:
#
#   bash packaging/build-linux.sh
#
# 1. a build venv (.venv-build, or $AEGIS_BUILD_VENV) with Aegis, its GUI extra and PyInstaller
#    (pyproject's `bundle` extra), from the package registry;
# 2. PyInstaller (pyinstaller.spec): dist/aegis/, one folder holding `aegis` and `aegis-tray`;
# 3. the desktop files (packaging/linux/), icons rendered from resources/icons/aegis.svg,
#    install.sh/uninstall.sh and the launcher, packed as dist/aegis-VERSION-linux-ARCH.tar.xz.
#
# No AppImage: appimagetool and its runtime are not on a package registry (GitHub downloads
# only), and this build uses registries alone; install.sh puts the .desktop files in place.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
venv=${AEGIS_BUILD_VENV:-.venv-build}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export PYTHONHASHSEED=0
start=$(date +%s)

if [ ! -x "$venv/bin/pyinstaller" ] || [ "${AEGIS_BUILD_REINSTALL:-0}" = 1 ]; then
  echo "== build venv: $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q ".[gui,bundle]"
fi

echo "== pyinstaller"
"$venv/bin/pyinstaller" --noconfirm --clean --log-level WARN \
  --workpath build/pyinstaller --distpath dist pyinstaller.spec 2>&1 \
  | grep -v -E "Library not found: could not resolve|Hidden import \"(pycparser|setuptools)" || true
[ -x dist/aegis/aegis ] || { echo "build-linux.sh: PyInstaller produced no dist/aegis/aegis" >&2; exit 1; }

# after PyInstaller: strip, ICU data (packaging/linux/finish-bundle.sh)
PYTHON="$venv/bin/python" bash packaging/linux/finish-bundle.sh dist/aegis

version=$("$venv/bin/python" -c "import aegis_engine; print(aegis_engine.__version__)")
arch=$(uname -m)
name="aegis-$version-linux-$arch"
stage="dist/$name"
echo "== stage $stage"
rm -rf "$stage"
mkdir -p "$stage/share/applications" "$stage/share/metainfo" "$stage/share/systemd" \
  "$stage/share/autostart" "$stage/share/file-managers" "$stage/share/icons"
cp -a dist/aegis "$stage/aegis"
cp packaging/linux/aegis-tray.desktop packaging/linux/aegis-scan.desktop "$stage/share/applications/"
cp packaging/linux/org.aegis.Aegis.metainfo.xml "$stage/share/metainfo/"
cp packaging/linux/aegis-monitor.service "$stage/share/systemd/"
cp packaging/linux/aegis-tray-autostart.desktop "$stage/share/autostart/"
cp -p packaging/linux/file-managers/* "$stage/share/file-managers/"
cp -p packaging/linux/install.sh packaging/linux/uninstall.sh packaging/linux/aegis-launcher.sh "$stage/"
echo "$version" > "$stage/VERSION"
cp README.md "$stage/README.md"
QT_QPA_PLATFORM=offscreen "$venv/bin/python" packaging/linux/render_icons.py "$stage/share/icons" >/dev/null

# tar.xz: 28 % smaller than tar.gz -9 for this bundle (docs/benchmarks.md); every tar reads it
# (tar xf). xz -9 with two threads: two 192 MB blocks, the same size as one thread, half the time.
echo "== tar.xz"
rm -f dist/aegis-*-linux-*.tar.gz dist/aegis-*-linux-*.tar.xz
tar --sort=name --mtime="@$SOURCE_DATE_EPOCH" --owner=0 --group=0 --numeric-owner \
  -C dist -cf - "$name" | xz -9 -T2 > "dist/$name.tar.xz"

unpacked=$(du -sb "$stage" | cut -f1)
packed=$(stat -c %s "dist/$name.tar.xz")
qt=$(du -sb dist/aegis/_internal/PySide6 | cut -f1)
echo "== done in $(( $(date +%s) - start )) s"
printf 'bundle:   %s\n' "$root/dist/aegis"
awk -v f="$root/dist/$name.tar.xz" -v p="$packed" -v u="$unpacked" -v q="$qt" 'BEGIN {
  printf "tar.xz:   %s (%.1f MB; unpacked %.1f MB, of which Qt/PySide6 %.1f MB)\n", f, p/1e6, u/1e6, q/1e6 }'
