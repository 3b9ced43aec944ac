#!/usr/bin/env bash
# What the Linux bundle gets after PyInstaller, in build-linux.sh and in bench scripts that
# build it themselves:
#
#   PYTHON=python3 bash packaging/linux/finish-bundle.sh dist/aegis
set -euo pipefail
bundle=$1
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

# debug symbols off the libraries (libpython alone: 23 -> 5 MB), except where stripping would
# break one (numpy's OpenBLAS: see the script)
"$python" "$here/strip_bundle.py" "$bundle"

# ICU's data library (32 MB; 12 MB of the compressed bundle), which Qt links but the tray app
# does not use, replaced by an empty one built here from icu-data-stub.c (see
# there; Qt falls back to its own code). Without a C compiler, or with AEGIS_KEEP_ICU_DATA=1,
# the real one stays.
for icu in "$bundle"/_internal/PySide6/Qt/lib/libicudata.so.*; do
  [ -f "$icu" ] && [ ! -L "$icu" ] && [ "${AEGIS_KEEP_ICU_DATA:-0}" != 1 ] || continue
  major=${icu##*.so.}
  major=${major%%.*}
  if command -v cc >/dev/null 2>&1 && cc -shared -fPIC -O2 -s -DICU_MAJOR="$major" \
      -Wl,-soname,"libicudata.so.$major" -o "$icu.stub" "$here/icu-data-stub.c"; then
    mv -f "$icu.stub" "$icu"
    echo "== ICU data: empty stub libicudata.so.$major ($(stat -c %s "$icu") bytes)"
  else
    rm -f "$icu.stub"
    echo "== ICU data: kept (no C compiler)"
  fi
done

