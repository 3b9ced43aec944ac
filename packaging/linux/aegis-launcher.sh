#!/bin/sh
# Aegis launcher: LIB/aegis and LIB/aegis-tray (install.sh puts it there; the commands in
# PREFIX/bin link to it). It starts LIB/current/<the name it was called by>, after:
#
#  1. fall-back: LIB/start-pending ("<version> <pid>") is written at a new build's first start
#     and removed by that build once it runs (aegis_engine.updates.app_layout.confirm_started).
#     Still there, for the build in force, and its process gone: that build did not start.
#     Go back to LIB/previous and list the build in LIB/failed/ (never staged again).
#  2. switch: LIB/staged (a verified update the update client unpacked beside the installed
#     build) becomes LIB/current, the build in force becomes LIB/previous, and this start
#     writes LIB/start-pending.
#
# A shell script on purpose: it must work whatever is wrong with a bundle. Links are replaced
# by renames, so a launch killed at any moment leaves a complete build in force.
set -u
self=$(readlink -f "$0")
lib=$(dirname "$self")
name=$(basename "$0")
case "$name" in aegis-tray*) prog=aegis-tray ;; *) prog=aegis ;; esac

relink() {  # relink NAME TARGET: LIB/NAME -> TARGET, atomically
  ln -sfn "$2" "$lib/.$1.$$" && mv -Tf "$lib/.$1.$$" "$lib/$1"
}
linked() {  # the version a link names, or nothing
  v=$(readlink "$lib/$1" 2>/dev/null) && basename "$v"
}

if [ -w "$lib" ]; then
  # one launcher at a time switches (two starts at once: the second waits a moment)
  if command -v flock >/dev/null 2>&1; then
    exec 9>"$lib/.launch.lock" && flock -w 10 9
  fi
  current=$(linked current || true)
  if [ -f "$lib/start-pending" ]; then
    read -r pending pid < "$lib/start-pending" || true
    if [ "${pending:-}" != "$current" ]; then
      rm -f "$lib/start-pending"
    elif [ -n "${pid:-}" ] && kill -0 "$pid" 2>/dev/null; then
      :  # that build is still starting (or running without having confirmed yet)
    else
      previous=$(linked previous || true)
      if [ -n "$previous" ] && [ -x "$lib/versions/$previous/$prog" ]; then
        mkdir -p "$lib/failed" && : > "$lib/failed/$current"
        relink current "versions/$previous"
        rm -f "$lib/previous" "$lib/start-pending"
        rm -rf "${lib:?}/versions/$current"
        echo "aegis: version $current did not start; went back to version $previous" >&2
        current=$previous
      else
        rm -f "$lib/start-pending"
      fi
    fi
  fi
  staged=$(linked staged || true)
  if [ -n "$staged" ]; then
    if [ "$staged" != "$current" ] && [ -x "$lib/versions/$staged/aegis" ] \
       && [ ! -e "$lib/failed/$staged" ]; then
      [ -n "$current" ] && relink previous "versions/$current"
      relink current "versions/$staged"
      echo "$staged $$" > "$lib/start-pending"
    fi
    rm -f "$lib/staged"
  fi
  if command -v flock >/dev/null 2>&1; then
    flock -u 9
    exec 9>&-
  fi
fi
exec "$lib/current/$prog" "$@"
