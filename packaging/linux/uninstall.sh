#!/bin/sh
# Remove what install.sh installed (same --prefix). Your profile (settings, quarantine,
# history) is kept; delete it with: aegis-tray's data folders, see docs/packaging.md.
set -eu
prefix="$HOME/.local"
case "${1:-}" in --prefix) prefix=$2 ;; --prefix=*) prefix=${1#--prefix=} ;; esac
lib="$prefix/lib/aegis"
manifest="$lib.installed"
if command -v systemctl >/dev/null 2>&1; then
  systemctl --user disable --now aegis-monitor.service >/dev/null 2>&1 || true
fi
if [ -f "$manifest" ]; then
  while IFS= read -r f; do rm -f "$f"; done < "$manifest"
  rm -f "$manifest"
fi
rm -f "${XDG_CONFIG_HOME:-$HOME/.config}/autostart/aegis-tray.desktop"
rm -rf "$lib"
echo "Aegis removed from $prefix. Your settings, quarantine and history are kept."
