#!/usr/bin/env bash
# Builds a second corpus of benign PE files, 32- and 64-bit, built with MinGW-w64 (GCC)
# rather than MSVC: NSIS installer stubs and plugins, and the MinGW GCC runtime DLLs, all
# from Debian packages. Used with shared/corpus/get-benign-pe.sh (Wine, x86-64 only) to
# train and evaluate the PE model against false positives on non-Microsoft toolchains.
#   usage: bench/ml_get_mingw_pe.sh [DEST]     (default DEST: ./.corpus/benign-pe-mingw)
# Needs apt-get and dpkg (Debian/Ubuntu). Prints the number of PE files it placed in DEST.
set -euo pipefail
dest=${1:-./.corpus/benign-pe-mingw}
pkgs=(nsis-common
      gcc-mingw-w64-i686-win32-runtime gcc-mingw-w64-x86-64-win32-runtime
      gcc-mingw-w64-i686-posix-runtime gcc-mingw-w64-x86-64-posix-runtime)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$dest"
( cd "$work" && apt-get download "${pkgs[@]}" >/dev/null 2>&1 ) || {
  echo "apt-get download failed: run 'apt-get update' first" >&2; exit 1; }
for deb in "$work"/*.deb; do dpkg -x "$deb" "$work/x"; done
n=0
while IFS= read -r -d '' f; do
  if [ "$(od -An -tx1 -N2 "$f" | tr -d ' ')" = "4d5a" ]; then
    rel=${f#"$work/x/"}; out="$dest/${rel//\//__}"
    cp "$f" "$out"; n=$((n + 1))
  fi
done < <(find "$work/x" -type f -size +1k -print0)
echo "$n benign PE files in $dest"
