#!/usr/bin/env bash
# CI smoke test of the Linux bundle: build it (unless --no-build), install the tar.xz into a
# temporary prefix with its install.sh, then, with a fresh profile (AEGIS_HOME):
#   - aegis --version names the version, through the launcher of the versioned layout;
#   - aegis update --app: this build published as a newer version into a fresh signed
#     repository (a folder), staged, switched in by the launcher at the next start;
#   - aegis scan on EICAR: exit 1; aegis scan on the installed bundle itself: exit 0 (Aegis
#     never flags itself, wherever its rules and model are copied);
#   - aegis-tray under Xvfb: reaches "protected", a second start with --scan hands the file
#     to it (exit 0), SIGTERM stops it cleanly (exit 0).
# Needs Xvfb (Debian: xvfb xauth) for the last part; without it that part fails unless
# AEGIS_SMOKE_NO_GUI=1.
#
#   bash packaging/smoke-test.sh [--no-build]
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != "--no-build" ]; then
  bash packaging/build-linux.sh
fi
tarball=$(ls -t dist/aegis-*-linux-*.tar.xz 2>/dev/null | head -1)
[ -n "$tarball" ] || { echo "smoke-test: no dist/aegis-*.tar.xz; run packaging/build-linux.sh" >&2; exit 1; }

work=$(mktemp -d)
tray_pid=""
xvfb_pid=""
cleanup() {
  [ -n "$tray_pid" ] && kill "$tray_pid" 2>/dev/null || true
  [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "smoke-test: FAIL: $*" >&2; exit 1; }
step() { echo "== $*"; }

export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" XDG_DATA_HOME="$work/home/.local/share"
export AEGIS_HOME="$work/profile"
mkdir -p "$HOME"
step "unpack and install $(basename "$tarball")"
tar -xf "$tarball" -C "$work"
"$work"/aegis-*/install.sh --prefix "$work/prefix" >/dev/null
bin="$work/prefix/bin"
[ -x "$bin/aegis" ] && [ -x "$bin/aegis-tray" ] || fail "install.sh did not install the commands"
for f in "$work/prefix/share/applications/aegis-tray.desktop" \
         "$work/prefix/share/applications/aegis-scan.desktop" \
         "$work/prefix/share/icons/hicolor/48x48/apps/aegis.png" \
         "$XDG_CONFIG_HOME/systemd/user/aegis-monitor.service" \
         "$XDG_DATA_HOME/nautilus/scripts/Scan with Aegis"; do
  [ -e "$f" ] || fail "install.sh did not install $f"
done
grep -q "^ExecStart=$bin/aegis monitor" "$XDG_CONFIG_HOME/systemd/user/aegis-monitor.service" \
  || fail "the systemd unit does not start $bin/aegis"

step "aegis --version"
out=$("$bin/aegis" --version 2>&1) || fail "aegis --version: $out"
echo "$out"
version=$(cat "$work"/aegis-*/VERSION)
echo "$out" | grep -q "^aegis $version " || fail "aegis --version does not say version $version"
lib="$work/prefix/lib/aegis"
[ "$(readlink "$lib/current")" = "versions/$version" ] || fail "install.sh did not make $lib/current"
[ ! -e "$lib/start-pending" ] || fail "a start marker was left behind"

step "aegis scan EICAR (exit 1)"
mkdir -p "$work/samples"
printf '%s' 'X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*' > "$work/samples/eicar.com"
set +e
"$bin/aegis" scan "$work/samples/eicar.com" > "$work/scan.out" 2>&1
code=$?
set -e
cat "$work/scan.out"
[ "$code" = 1 ] || fail "aegis scan on EICAR exited $code, expected 1"
grep -q "EICAR" "$work/scan.out" || fail "aegis scan did not name EICAR"

step "aegis scan a PE file: the ML model loads (numpy, onnxruntime)"
pe=/usr/share/clamav-testfiles/clam.exe
if [ -f "$pe" ]; then
  set +e
  "$bin/aegis" scan "$pe" > "$work/pe.out" 2>&1
  code=$?
  set -e
  tail -4 "$work/pe.out"
  if [ "$code" -gt 1 ] || grep -q -E "Traceback|disabled|could not be loaded" "$work/pe.out"; then
    cat "$work/pe.out"; fail "scanning a PE file: exit $code, or the model did not load"
  fi
else
  echo "(no $pe: apt-get install clamav-testfiles; skipped)"
fi

step "aegis scan the installed bundle itself (exit 0)"
set +e
"$bin/aegis" scan -q "$work/prefix/lib/aegis" > "$work/self.out" 2>&1
code=$?
set -e
tail -3 "$work/self.out"
[ "$code" = 0 ] || { cat "$work/self.out"; fail "scanning the bundle exited $code: it flags itself or cannot read itself"; }

step "app update: this build published as a newer version, staged, switched in at the next start"
venv=${AEGIS_BUILD_VENV:-.venv-build}
repo_cli() { PYTHONPATH="$(pwd)" "$venv/bin/python" -m aegis_engine.repo.cli "$@"; }
repo_cli init "$work/repo" --keys "$work/keys" >/dev/null
repo_cli release "$work/repo" --keys "$work/keys" --app "$lib/versions/$version" \
  --app-version "$version+smoke" > "$work/release.out" || { cat "$work/release.out"; fail "aegis-repo release --app"; }
out=$("$bin/aegis" update --app --from "$work/repo" --root "$work/repo/metadata/1.root.json" 2>&1) \
  || fail "aegis update --app: $out"
echo "$out"
[ "$(readlink "$lib/staged")" = "versions/$version+smoke" ] || fail "aegis update --app staged nothing"
# the bundle itself, not through the launcher (which would switch)
"$lib/current/aegis" status > "$work/status.out" 2>&1 || { cat "$work/status.out"; fail "aegis status"; }
grep -q "version $version+smoke staged" "$work/status.out" || { cat "$work/status.out"; fail "aegis status does not show the staged version"; }
"$bin/aegis" --version > /dev/null || fail "the new build does not start"
[ "$(readlink "$lib/current")" = "versions/$version+smoke" ] || fail "the launcher did not switch to the staged build"
[ "$(readlink "$lib/previous")" = "versions/$version" ] || fail "the previous build is not kept"
[ ! -e "$lib/start-pending" ] || fail "the new build did not confirm its start"
echo "switched to $version+smoke, $version kept as the previous build"

if [ "${AEGIS_SMOKE_NO_GUI:-0}" = 1 ]; then
  echo "smoke-test: OK (tray app not checked: AEGIS_SMOKE_NO_GUI=1)"
  exit 0
fi
step "aegis-tray under Xvfb"
command -v Xvfb >/dev/null || fail "Xvfb is not installed (apt-get install xvfb xauth)"
display=":$(( 90 + RANDOM % 400 ))"
Xvfb "$display" -screen 0 1280x800x24 -nolisten tcp >/dev/null 2>&1 &
xvfb_pid=$!
export DISPLAY="$display" QT_QPA_PLATFORM=xcb
unset DBUS_SESSION_BUS_ADDRESS WAYLAND_DISPLAY
for _ in $(seq 100); do [ -e "/tmp/.X11-unix/X${display#:}" ] && break; sleep 0.1; done
"$bin/aegis-tray" --no-notifications --timings > "$work/tray.out" 2>&1 &
tray_pid=$!
for _ in $(seq 600); do
  grep -q "protected shown" "$work/tray.out" && break
  kill -0 "$tray_pid" 2>/dev/null || { cat "$work/tray.out"; fail "aegis-tray exited at start"; }
  sleep 0.1
done
grep -q "protected shown" "$work/tray.out" || { cat "$work/tray.out"; fail "aegis-tray never showed 'protected' (60 s)"; }
grep "protected shown" "$work/tray.out"

step "second start: aegis-tray --scan hands the file to the running one"
set +e
timeout 60 "$bin/aegis-tray" --scan "$work/samples/eicar.com" > "$work/second.out" 2>&1
code=$?
set -e
cat "$work/second.out"
[ "$code" = 0 ] || fail "second aegis-tray --scan exited $code"
grep -q "asked it to scan 1 item" "$work/second.out" || fail "the second start did not hand over the path"
kill -0 "$tray_pid" 2>/dev/null || fail "the running tray app died after the --scan request"

step "SIGTERM stops it cleanly"
kill -TERM "$tray_pid"
code=0
for _ in $(seq 300); do kill -0 "$tray_pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$tray_pid" 2>/dev/null; then fail "aegis-tray still running 30 s after SIGTERM"; fi
wait "$tray_pid" || code=$?
tray_pid=""
[ "$code" = 0 ] || { cat "$work/tray.out"; fail "aegis-tray exited $code after SIGTERM"; }
if grep -q -E "Traceback|Fatal Python error" "$work/tray.out"; then
  cat "$work/tray.out"; fail "aegis-tray printed a traceback"
fi
echo "smoke-test: OK"
