#!/bin/sh
# Install Aegis from the unpacked tar.xz, for this user (no root needed):
#
#   ./install.sh [--prefix DIR] [--autostart] [--no-file-manager]
#
# DIR defaults to ~/.local: the bundle goes to DIR/lib/aegis/versions/VERSION (with a launcher
# in DIR/lib/aegis that also switches to updates of the program), the commands aegis and
# aegis-tray to DIR/bin, the menu entry, "Open With > Scan with Aegis", icons and AppStream
# metainfo to DIR/share. With --prefix /usr/local (as root) it installs for every user. Also installed:
# "Scan with Aegis" for the Nautilus, Nemo and Caja script menus and Dolphin's service menu
# (unless --no-file-manager), the headless monitor's systemd user unit (not enabled), and with
# --autostart the XDG autostart entry (the tray app's "Start Aegis when I log in" does the same).
# ./uninstall.sh removes all of it; your profile (settings, quarantine, history) stays.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
prefix="$HOME/.local"
autostart=0
file_manager=1
while [ "$#" -gt 0 ]; do
  case "$1" in
    --prefix) prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --autostart) autostart=1; shift ;;
    --no-file-manager) file_manager=0; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
case "$prefix" in /*) ;; *) prefix="$(pwd)/$prefix" ;; esac
[ -x "$here/aegis/aegis" ] || { echo "install.sh: $here/aegis/aegis is missing" >&2; exit 2; }
[ -f "$here/aegis-launcher.sh" ] || { echo "install.sh: $here/aegis-launcher.sh is missing" >&2; exit 2; }

lib="$prefix/lib/aegis"
bin="$prefix/bin"
share="$prefix/share"
config="${XDG_CONFIG_HOME:-$HOME/.config}"
data="${XDG_DATA_HOME:-$HOME/.local/share}"
manifest="$lib.installed"

mkdir -p "$prefix/lib" "$bin" "$share/applications" "$share/metainfo" "$share/doc/aegis"
# The versioned layout (aegis_engine/updates/app_layout.py): LIB/versions/<version>/ holds the
# bundle, LIB/current links to the one in force, LIB/aegis is the launcher that follows it
# (and switches to an update staged by `aegis update --app` at the next start). An older
# install (the bundle directly in LIB) is replaced. The new build is copied next to the old
# one and switched in by a rename: a running Aegis keeps its files until it exits.
version=$(cat "$here/VERSION" 2>/dev/null || echo installed)
if [ -e "$lib" ] && [ ! -d "$lib/versions" ]; then
  rm -rf "$lib.old" && mv "$lib" "$lib.old" && rm -rf "$lib.old"
fi
mkdir -p "$lib/versions"
rm -rf "$lib/versions/.install-$version"
cp -a "$here/aegis" "$lib/versions/.install-$version"
if [ -e "$lib/versions/$version" ]; then
  rm -rf "$lib/versions/.old-$version"
  mv "$lib/versions/$version" "$lib/versions/.old-$version"
fi
mv "$lib/versions/.install-$version" "$lib/versions/$version"
ln -sfn "versions/$version" "$lib/.current.new" && mv -Tf "$lib/.current.new" "$lib/current"
rm -f "$lib/staged" "$lib/previous" "$lib/start-pending"
rm -rf "$lib/failed"
for old in "$lib"/versions/* "$lib"/versions/.[!.]*; do
  [ -e "$old" ] || continue
  [ "$(basename "$old")" = "$version" ] || rm -rf "$old"
done
cp "$here/aegis-launcher.sh" "$lib/.aegis.new" && chmod 755 "$lib/.aegis.new" && mv -f "$lib/.aegis.new" "$lib/aegis"
ln -sfn aegis "$lib/aegis-tray"
ln -sf "$lib/aegis" "$bin/aegis"
ln -sf "$lib/aegis-tray" "$bin/aegis-tray"

: > "$manifest"
put() {  # put SOURCE TARGET [MODE]: copy, with @BINDIR@ and @DOCDIR@ filled in
  mkdir -p "$(dirname "$2")"
  sed -e "s|@BINDIR@|$bin|g" -e "s|@DOCDIR@|$share/doc/aegis|g" \
      -e "s|^Exec=aegis-tray|Exec=$bin/aegis-tray|" -e "s|^TryExec=aegis-tray|TryExec=$bin/aegis-tray|" \
      "$1" > "$2"
  chmod "${3:-644}" "$2"
  echo "$2" >> "$manifest"
}
put "$here/share/applications/aegis-tray.desktop" "$share/applications/aegis-tray.desktop"
put "$here/share/applications/aegis-scan.desktop" "$share/applications/aegis-scan.desktop"
put "$here/share/metainfo/org.aegis.Aegis.metainfo.xml" "$share/metainfo/org.aegis.Aegis.metainfo.xml"
put "$here/README.md" "$share/doc/aegis/README.md"
for icon in $(cd "$here/share/icons" && find hicolor -type f); do
  put "$here/share/icons/$icon" "$share/icons/$icon"
done
put "$here/share/systemd/aegis-monitor.service" "$config/systemd/user/aegis-monitor.service"
if [ "$autostart" = 1 ]; then
  put "$here/share/autostart/aegis-tray-autostart.desktop" "$config/autostart/aegis-tray.desktop"
fi
if [ "$file_manager" = 1 ]; then
  for dir in "$data/nautilus/scripts" "$data/nemo/scripts" "$config/caja/scripts"; do
    put "$here/share/file-managers/scan-with-aegis" "$dir/Scan with Aegis" 755
  done
  put "$here/share/file-managers/aegis-scan-dolphin.desktop" \
      "$data/kio/servicemenus/aegis-scan.desktop" 755
fi
echo "$bin/aegis" >> "$manifest"
echo "$bin/aegis-tray" >> "$manifest"

command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$share/applications" || true
command -v gtk-update-icon-cache >/dev/null 2>&1 && gtk-update-icon-cache -q -t "$share/icons/hicolor" || true
command -v systemctl >/dev/null 2>&1 && systemctl --user daemon-reload >/dev/null 2>&1 || true

echo "Aegis installed in $lib."
case ":$PATH:" in *":$bin:"*) ;; *) echo "Add $bin to your PATH to run aegis from a terminal." ;; esac
echo "Start it from the menu (Aegis) or run: aegis-tray"
echo "Headless protection instead of the tray app: systemctl --user enable --now aegis-monitor.service"
