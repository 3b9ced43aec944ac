#!/bin/sh
# Which network connections do a scan and a monitor session make with default settings?
# Runs both under `strace -f -e trace=connect` with a fresh AEGIS_HOME and prints every
# connect() that is not to a local (AF_UNIX) socket. Expected: none (the update check only
# runs when [updates] server is set; look-ups, statistics, crash reports and samples need
# consent and an endpoint).
#   usage: bench/connect_trace.sh [PYTHON]   (default: .venv/bin/python)
set -eu
PY=${1:-.venv/bin/python}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
export AEGIS_HOME="$WORK/home"
mkdir -p "$WORK/target" "$WORK/watched"
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' >"$WORK/target/eicar.com"
printf 'MZ\0\0not really a program\n' >"$WORK/target/tool.exe"

strace -f -qq -e trace=connect -o "$WORK/scan.trace" "$PY" -m aegis_engine.cli scan "$WORK/target" >/dev/null || true
strace -f -qq -e trace=connect -o "$WORK/monitor.trace" timeout -s TERM 8 "$PY" -m aegis_engine.cli monitor --no-processes "$WORK/watched" >/dev/null 2>&1 &
sleep 4
cp "$WORK/target/eicar.com" "$WORK/watched/eicar.com"
wait || true

for run in scan monitor; do
    total=$(grep -c 'connect(' "$WORK/$run.trace" || true)
    net=$(grep 'connect(' "$WORK/$run.trace" | grep -v 'AF_UNIX' || true)
    echo "$run: $total connect() calls, $(printf '%s' "$net" | grep -c . || true) to a network address"
    [ -z "$net" ] || printf '%s\n' "$net"
done
