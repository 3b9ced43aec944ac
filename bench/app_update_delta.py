#!/usr/bin/env python3
"""An app update for a one-line code change: bytes transferred (delta) vs the full bundle.

Builds the bundle twice as build-linux.sh does (PyInstaller with ``pyinstaller.spec``, then
``packaging/linux/finish-bundle.sh``) from a copy of this source tree: as it is, and with one
line of ``aegis_engine/cli/update_cmd.py`` changed. Publishes both as app versions with
``aegis-repo``'s release code into a fresh signed repository, then lets the real client stage
the second over an installation of the first (the versioned layout of install.sh) from that
repository copied to a folder (``--from``: same verification, no network), and reports the
bytes the client read, the full bundle's, and the times.

Peak memory: publishing and staging each run in a child process that reports its own peak
RSS (``VmHWM`` in ``/proc/self/status``), side by side for this tree and for the update code
of ``--compare REV`` (``git archive REV aegis_engine``, default ``main``), each with its own
repository: staging by delta, and staging the full bundle (the installed copy changed by
hand, so that no delta applies).

    .venv/bin/python bench/app_update_delta.py [--venv .venv-build] [--compare main]
        [--keep-work]

``--venv`` is the build venv of ``packaging/build-linux.sh`` (it has PyInstaller).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aegis_engine.updates.app_bundle import bundle_digest, bundle_tar  # noqa: E402

CHANGED_FILE = "aegis_engine/cli/update_cmd.py"
OLD_LINE = '"current": f"Up to date: content version {result.version}",'
NEW_LINE = '"current": f"Up to date: signatures version {result.version}",'


def copy_source(dest: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        rel = raw.decode()
        src = REPO / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def build(src: Path, venv: Path, out: Path) -> float:
    env = {**os.environ, "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "1700000000"}
    t0 = time.monotonic()
    subprocess.run(
        [
            str(venv / "bin" / "pyinstaller"),
            "--noconfirm",
            "--clean",
            "--log-level",
            "ERROR",
            "--workpath",
            str(out.parent / f"work-{out.name}"),
            "--distpath",
            str(out),
            str(src / "pyinstaller.spec"),
        ],
        cwd=src,
        env=env,
        check=True,
    )
    # what build-linux.sh does after PyInstaller (strip, ICU data)
    subprocess.run(
        ["bash", str(src / "packaging" / "linux" / "finish-bundle.sh"), str(out / "aegis")],
        env={**env, "PYTHON": str(venv / "bin" / "python")},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - t0


# One step in a child process, with the update code found on PYTHONPATH (this tree's, or
# --compare's): its peak RSS is the step's alone.
CHILD = r"""
import json, sys, time
from pathlib import Path
from aegis_engine.paths import AegisPaths
from aegis_engine.repo.tufrepo import TufRepo
step, work = sys.argv[1], Path(sys.argv[2])
repo, keys = work / "repo", work / "keys"
out = {}
if step == "publish":
    from aegis_engine.repo.app_publish import release_app
    TufRepo(repo, keys).init()
    release_app(repo, keys, Path(sys.argv[3]), version="1.0.0")
    t0 = time.monotonic()
    r2 = release_app(repo, keys, Path(sys.argv[4]), version="1.0.1")
    out = {"publish_s": time.monotonic() - t0, "full": r2.full_bytes,
           "delta": r2.deltas.get("1.0.0")}
else:
    from aegis_engine.updates.app_service import check_for_app_update
    t0 = time.monotonic()
    r = check_for_app_update(AegisPaths.under(work / ("profile-" + step)), source_dir=repo,
                             root_file=repo / "metadata" / "1.root.json", app_dir=Path(sys.argv[3]))
    out = {"stage_s": time.monotonic() - t0, "result": r.result, "reason": r.reason,
           "bytes": r.bytes_downloaded, "delta": r.delta}
# this program's own peak (a new address space since exec; getrusage's ru_maxrss would carry
# the parent's high-water mark over fork and exec)
status = Path("/proc/self/status").read_text()
out["hwm_kb"] = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmHWM:")))
print(json.dumps(out))
"""


def child(code: Path, *args: str) -> tuple[dict[str, object], float]:
    """(what the step printed, its peak RSS in MB)."""
    env = {**os.environ, "PYTHONPATH": str(code)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args], env=env, stdout=subprocess.PIPE, cwd=code
    )
    assert proc.stdout is not None
    text = proc.stdout.read()
    if proc.wait() != 0:
        raise SystemExit(f"bench: step {args[0]} failed ({proc.returncode})")
    out = json.loads(text)
    return out, int(out["hwm_kb"]) / 1024


def installation(work: Path, build: Path, name: str, *, touched: bool = False) -> Path:
    """An installation of ``build`` as version 1.0.0 (install.sh's layout)."""
    lib = work / name / "aegis"
    (lib / "versions").mkdir(parents=True)
    shutil.copytree(build, lib / "versions" / "1.0.0", symlinks=True)
    (lib / "current").symlink_to("versions/1.0.0")
    if touched:  # changed by hand: its tar is not the base of any delta
        (lib / "versions" / "1.0.0" / "aegis-touched").write_text("changed\n")
    return lib


def compare_code(work: Path, rev: str) -> Path:
    """``aegis_engine`` (and its resources) as of ``rev``, to import instead of this tree's."""
    dest = work / f"code-{rev}"
    dest.mkdir()
    tar = subprocess.run(
        ["git", "archive", rev, "aegis_engine", "resources"], cwd=REPO, capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=tar, check=True)
    (dest / "aegis_resources").symlink_to("resources")
    return dest


def memory(work: Path, a: Path, b: Path, code: Path, tag: str) -> dict[str, object]:
    """Publish a then b, stage b by delta and in full; figures and peak RSS of each step."""
    w = work / f"mem-{tag}"
    w.mkdir()
    pub, pub_mb = child(code, "publish", str(w), str(a), str(b))
    by_delta, delta_mb = child(code, "delta", str(w), str(installation(w, a, "lib-delta")))
    full, full_mb = child(
        code, "full", str(w), str(installation(w, a, "lib-full", touched=True))
    )
    for r in (by_delta, full):
        if r["result"] != "staged":
            raise SystemExit(f"bench ({tag}): the client did not stage: {r['reason']}")
    if not by_delta["delta"] or full["delta"]:
        raise SystemExit(f"bench ({tag}): delta and full staging got mixed up")
    staged = w / "lib-delta" / "aegis" / "versions" / "1.0.1"
    return {
        "publish_rss_mb": pub_mb,
        "publish_s": pub["publish_s"],
        "delta_bytes": pub["delta"],
        "full_bytes": pub["full"],
        "stage_delta_rss_mb": delta_mb,
        "stage_delta_s": by_delta["stage_s"],
        "stage_delta_read": by_delta["bytes"],
        "stage_full_rss_mb": full_mb,
        "stage_full_s": full["stage_s"],
        "staged_matches": bundle_digest(staged) == bundle_digest(b),
    }


def differing(a: Path, b: Path) -> list[tuple[str, int]]:
    out = []
    for p in sorted(b.rglob("*")):
        rel = p.relative_to(b)
        q = a / rel
        same = q.is_file() and q.read_bytes() == p.read_bytes()
        if p.is_file() and not p.is_symlink() and not same:
            out.append((rel.as_posix(), p.stat().st_size))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--venv", type=Path, default=REPO / ".venv-build")
    ap.add_argument("--keep-work", action="store_true")
    ap.add_argument("--compare", default="main", metavar="REV", help="the code to compare with")
    args = ap.parse_args()
    args.venv = args.venv.absolute()
    if not (args.venv / "bin" / "pyinstaller").exists():
        raise SystemExit(f"no PyInstaller in {args.venv}: run bash packaging/build-linux.sh first")
    work = Path(tempfile.mkdtemp(prefix="aegis-app-delta-"))
    out: dict[str, object] = {"cpus": os.cpu_count(), "load": os.getloadavg()[0]}
    try:
        src = work / "src"
        copy_source(src)
        out["build_a_s"] = build(src, args.venv, work / "a")
        changed = src / CHANGED_FILE
        text = changed.read_text()
        if OLD_LINE not in text:
            raise SystemExit(f"bench: the line to change is not in {CHANGED_FILE} any more")
        changed.write_text(text.replace(OLD_LINE, NEW_LINE))
        out["build_b_s"] = build(src, args.venv, work / "b")
        a, b = work / "a" / "aegis", work / "b" / "aegis"
        diff = differing(a, b)
        out["files_changed"] = diff

        tar_b = bundle_tar(b)
        out["tar_mb"] = len(tar_b) / 1e6
        out["tar_gz9_mb"] = len(gzip.compress(tar_b, 9, mtime=0)) / 1e6
        del tar_b
        out["now"] = memory(work, a, b, REPO, "now")
        out["before"] = memory(work, a, b, compare_code(work, args.compare), args.compare)
    finally:
        if args.keep_work:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    now, before = out["now"], out["before"]
    assert isinstance(now, dict) and isinstance(before, dict)
    full = float(now["full_bytes"])
    print(
        f"one-line change in {CHANGED_FILE}; files that differ between the two builds: "
        + ", ".join(f"{n} ({s / 1e6:.1f} MB)" for n, s in out["files_changed"])  # type: ignore[union-attr]
    )
    print(f"| figure | {args.compare} | this tree |")
    print("|---|---|---|")
    print(f"| bundle tar (unpacked) | {out['tar_mb']:.1f} MB | same |")
    print(
        f"| full update (sealed tar, zstd) | {float(before['full_bytes']) / 1e6:.1f} MB "
        f"| {full / 1e6:.1f} MB |"
    )
    print(f"| same tar, gzip -9 (for comparison) | {out['tar_gz9_mb']:.1f} MB | same |")
    print(
        f"| the delta, as served | {before['delta_bytes']} B | {now['delta_bytes']} B |"
    )
    print(
        f"| the client read, metadata included | {before['stage_delta_read']} B "
        f"| {now['stage_delta_read']} B |"
    )
    for key, label in (
        ("stage_delta_rss_mb", "client peak RSS, staging the delta"),
        ("stage_full_rss_mb", "client peak RSS, staging the full bundle"),
        ("publish_rss_mb", "publisher peak RSS, both releases"),
    ):
        print(f"| {label} | {float(before[key]):.0f} MB | {float(now[key]):.0f} MB |")
    for key, label in (
        ("stage_delta_s", "stage the delta"),
        ("stage_full_s", "stage the full bundle"),
        ("publish_s", "publish the second release"),
    ):
        print(f"| {label} | {float(before[key]):.1f} s | {float(now[key]):.1f} s |")
    print(json.dumps(out))
    return 0 if now["staged_matches"] and before["staged_matches"] else 1


if __name__ == "__main__":
    sys.exit(main())
