#!/usr/bin/env python3
"""An app update for a one-line code change: bytes transferred (delta) vs the full bundle.

Builds the bundle twice as build-linux.sh does (PyInstaller with ``pyinstaller.spec``, then
``packaging/linux/finish-bundle.sh``) from a copy of this source tree: as it is, and with one
line of ``aegis_engine/cli/update_cmd.py`` changed. Publishes both as app versions with
``aegis-repo``'s release code into a fresh signed repository, then lets the real client stage
the second over an installation of the first (the versioned layout of install.sh) from that
repository copied to a folder (``--from``: same verification, no network), and reports the
bytes the client read, the full bundle's, and the times.

    .venv/bin/python bench/app_update_delta.py [--venv .venv-build] [--keep-work]

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

from aegis_engine.paths import AegisPaths  # noqa: E402
from aegis_engine.repo.app_publish import release_app  # noqa: E402
from aegis_engine.repo.tufrepo import TufRepo  # noqa: E402
from aegis_engine.updates.app_bundle import bundle_tar  # noqa: E402
from aegis_engine.updates.app_service import check_for_app_update  # noqa: E402
from aegis_engine.updates.index import sha256_hex  # noqa: E402

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
    args = ap.parse_args()
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

        repo, keys = work / "repo", work / "keys"
        TufRepo(repo, keys).init()
        r1 = release_app(repo, keys, a, version="1.0.0")
        t0 = time.monotonic()
        r2 = release_app(repo, keys, b, version="1.0.1")
        out["publish_s"] = time.monotonic() - t0
        tar_b = bundle_tar(b)
        out["tar_mb"] = len(tar_b) / 1e6
        out["tar_gz9_mb"] = len(gzip.compress(tar_b, 9, mtime=0)) / 1e6
        out["full_sealed_mb"] = r2.full_bytes / 1e6
        out["delta_bytes"] = r2.deltas.get("1.0.0")
        if out["delta_bytes"] is None:
            print("bench: no delta published (tar above updates/delta.py's MAX_DELTA_INPUT?)")
        del r1

        lib = work / "lib" / "aegis"
        (lib / "versions").mkdir(parents=True)
        shutil.copytree(a, lib / "versions" / "1.0.0", symlinks=True)
        (lib / "current").symlink_to("versions/1.0.0")
        paths = AegisPaths.under(work / "profile")
        t0 = time.monotonic()
        result = check_for_app_update(
            paths, source_dir=repo, root_file=repo / "metadata" / "1.root.json", app_dir=lib
        )
        out["stage_s"] = time.monotonic() - t0
        if result.result != "staged":
            raise SystemExit(f"bench: the client did not stage: {result.reason}")
        staged = bundle_tar(lib / "versions" / "1.0.1")
        out["staged_matches"] = sha256_hex(staged) == sha256_hex(tar_b)
        out["client_bytes"] = result.bytes_downloaded
        out["client_used_delta"] = result.delta
    finally:
        if args.keep_work:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)

    delta = out["client_bytes"]
    full = float(out["full_sealed_mb"]) * 1e6  # type: ignore[arg-type]
    print(
        f"one-line change in {CHANGED_FILE}; files that differ between the two builds: "
        + ", ".join(f"{n} ({s / 1e6:.1f} MB)" for n, s in out["files_changed"])  # type: ignore[union-attr]
    )
    print("| figure | bytes |")
    print("|---|---|")
    print(f"| bundle tar (unpacked) | {out['tar_mb']:.1f} MB |")
    print(f"| full update (sealed tar, zstd) | {full / 1e6:.1f} MB |")
    print(f"| same tar, gzip -9 (for comparison) | {out['tar_gz9_mb']:.1f} MB |")
    print(
        f"| the client read, metadata included "
        f"({'a delta' if out['client_used_delta'] else 'the FULL bundle'}) | "
        f"{delta / 1e3:.0f} kB ({100 * delta / full:.2f} % of the full update) |"  # type: ignore[operator]
    )
    print(
        f"| publish the delta / stage it on the client | {out['publish_s']:.0f} s / "
        f"{out['stage_s']:.0f} s |"
    )
    print(json.dumps(out))
    return 0 if out["staged_matches"] else 1


if __name__ == "__main__":
    sys.exit(main())
