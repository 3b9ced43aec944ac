#!/usr/bin/env bash
# Build the tray app and the command line with pyside6-deploy (Nuitka), to measure it against
# the PyInstaller bundle (docs/packaging.md "pyside6-deploy / Nuitka"). Not the shipped build.
#
#   nice -n 19 bash packaging/linux/build-nuitka.sh
#
# 1. a venv (.venv-nuitka, git-ignored) with Aegis, its GUI extra and Nuitka, from PyPI;
# 2. pyside6-deploy --mode standalone on packaging/entry/aegis_main.py (the same entry script
#    as PyInstaller's: the executable's name picks the tray app or the command line), with the
#    Qt modules and plugins the PyInstaller bundle keeps, in build-nuitka/ (git-ignored);
# 3. build-nuitka/aegis/: the folder, with aegis-tray hard-linked to aegis.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
venv=${AEGIS_NUITKA_VENV:-.venv-nuitka}
start=$(date +%s)
if [ ! -x "$venv/bin/nuitka" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q ".[gui]" nuitka ordered-set zstandard
fi
work=build-nuitka
rm -rf "$work/app" "$work/aegis"
mkdir -p "$work/app"
cp packaging/entry/aegis_main.py "$work/app/aegis_main.py"
cat > "$work/app/pysidedeploy.spec" <<SPEC
[app]
title = aegis
project_dir = .
input_file = aegis_main.py
exec_directory = .
project_file =
icon = $root/resources/icons/aegis.png

[python]
packages = Nuitka

[qt]
qml_files =
excluded_qml_plugins =
modules = Core,Gui,Widgets,Network,Svg
plugins = platforms,platformthemes,platforminputcontexts,imageformats,iconengines,wayland-decoration-client,wayland-shell-integration

[nuitka]
macos.permissions =
mode = standalone
extra_args = --quiet --noinclude-qt-translations --static-libpython=no --include-package=aegis_engine --include-package=aegis_gui --include-package=aegis_resources --include-package-data=aegis_resources --include-distribution-metadata=aegis --nofollow-import-to=aegis_engine.ml.train,aegis_engine.ml.dataset,pytest,_pytest,tests,tkinter,matplotlib,pandas,IPython --assume-yes-for-downloads
SPEC
[ -f resources/icons/aegis.png ] || sed -i "s|^icon = .*|icon =|" "$work/app/pysidedeploy.spec"
(cd "$work/app" && PATH="$root/$venv/bin:$PATH" "$root/$venv/bin/pyside6-deploy" \
  -c pysidedeploy.spec --force --no-install --keep-deployment-files)
out=$(find "$work/app" -maxdepth 3 -type d -name "*.dist" | head -1)
[ -n "$out" ] || { echo "build-nuitka.sh: no .dist folder produced" >&2; exit 1; }
mv "$out" "$work/aegis"
exe=$(find "$work/aegis" -maxdepth 1 -type f -name "aegis*" -perm -u+x | head -1)
[ "$exe" = "$work/aegis/aegis" ] || mv "$exe" "$work/aegis/aegis"
# a hard link, not a symlink: Nuitka's program sees the resolved name of a symlink as argv[0]
ln -f "$work/aegis/aegis" "$work/aegis/aegis-tray"
echo "build-nuitka.sh: $work/aegis in $(( $(date +%s) - start )) s"
