#!/usr/bin/env bash
# Builds the benchmark tree (>= 1 GB) reproducibly, from public packages only.
#
#   usage: bash bench/make_tree.sh [DEST]        (default DEST: bench/.work/tree)
#          FORCE=1 bash bench/make_tree.sh       rebuild even if DEST is already complete
#
# The tree has three parts:
#   DEST/benign-pe/         benign Windows PE files (EXE/DLL) taken from Debian's libwine and nsis
#                           packages by ../shared/corpus/get-benign-pe.sh. Copied from
#                           $BENIGN_PE_DIR (default: <repo>/.corpus/benign-pe); built there first
#                           if absent (that needs `apt-get update` once, and root).
#   DEST/site-packages/     a Python site-packages tree: the pinned wheels below, for CPython 3.11
#                           on manylinux x86_64, installed with `pip install --target`
#                           (--only-binary, --no-deps, --no-compile, explicit --platform/--abi),
#                           so the content does not depend on the interpreter running this script.
#   DEST/clamav-testfiles/  ClamAV's test files (Debian package clamav-testfiles).
#
# Prints the number of files and the total size, and a fingerprint (sha256 over the sorted list of
# "relative path<TAB>size") that should be the same on every machine for the same inputs.
# The benign-PE corpus follows whatever libwine/nsis versions the Debian mirror serves, so its
# part of the fingerprint changes when Debian updates those packages.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
dest=${1:-$repo/bench/.work/tree}
pe_dir=${BENIGN_PE_DIR:-$repo/.corpus/benign-pe}
shared=${AEGIS_SHARED_DIR:-$repo/../shared}
testfiles=${CLAMAV_TESTFILES:-/usr/share/clamav-testfiles}
if [ -x "$repo/.venv/bin/python" ]; then py=${PYTHON:-$repo/.venv/bin/python}; else py=${PYTHON:-python3}; fi

# Pinned wheels for the site-packages part (8,506 files, about 580 MB installed; with the
# PE corpus (about 670 MB) and the test files the tree is about 1.25 GB).
WHEELS=(
  numpy==2.4.6
  scipy==1.17.1
  pandas==2.2.3
  onnxruntime==1.31.1
  PySide6-Essentials==6.12.0
  shiboken6==6.12.0
  scikit-learn==1.9.1
  cryptography==46.0.3
  pip==26.3
)
PIP_TARGET_ARGS=(
  --only-binary=:all: --no-deps --no-compile --disable-pip-version-check --no-warn-script-location
  --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none
  --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64
  --platform manylinux_2_17_x86_64
  --platform manylinux2014_x86_64 --platform any
)

stamp="${dest%/}.spec"   # beside the tree, so the tree holds only the three parts
spec="tree-spec-1 wheels=${WHEELS[*]} pe=$pe_dir testfiles=$testfiles"

summarise() {
  local root=$1
  local files bytes fp
  files=$(find "$root" -type f | wc -l)
  bytes=$(find "$root" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%d", s}')
  fp=$(cd "$root" && find . -type f -printf '%P\t%s\n' | LC_ALL=C sort | sha256sum | cut -c1-16)
  echo "tree: $root"
  for part in benign-pe site-packages clamav-testfiles; do
    printf '  %-17s %6d files %8.1f MB\n' "$part" \
      "$(find "$root/$part" -type f | wc -l)" \
      "$(find "$root/$part" -type f -printf '%s\n' | awk '{s+=$1} END {printf "%.1f", s/1e6}')"
  done
  printf 'total: %d files, %d bytes (%.2f GB), fingerprint %s\n' "$files" "$bytes" \
    "$(awk -v b="$bytes" 'BEGIN {printf "%.3f", b/1e9}')" "$fp"
  if [ "$bytes" -lt 1000000000 ]; then echo "warning: the tree is smaller than 1 GB" >&2; fi
}

if [ -z "${FORCE:-}" ] && [ -d "$dest" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$spec" ]; then
  echo "tree already built (FORCE=1 to rebuild)"
  summarise "$dest"
  exit 0
fi

# 1. The benign PE corpus.
if [ -z "$(ls -A "$pe_dir" 2>/dev/null)" ]; then
  echo "building the benign PE corpus in $pe_dir ..."
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then apt-get update -qq || true; fi
  bash "$shared/corpus/get-benign-pe.sh" "$pe_dir"
fi
[ -d "$testfiles" ] || { echo "missing $testfiles: apt-get install clamav-testfiles" >&2; exit 1; }

rm -rf "$dest" "$stamp"
mkdir -p "$dest"
echo "copying the PE corpus and ClamAV's test files ..."
cp -r "$pe_dir" "$dest/benign-pe"
cp -r "$testfiles" "$dest/clamav-testfiles"

# 2. The site-packages tree.
echo "installing the pinned wheels into $dest/site-packages ..."
"$py" -m pip install -q --target "$dest/site-packages" "${PIP_TARGET_ARGS[@]}" "${WHEELS[@]}"

echo "$spec" > "$stamp"
summarise "$dest"
