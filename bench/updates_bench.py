"""Update sizes and costs (issue 14): what a check moves, and what a delta costs to make and
apply, bsdiff4 against zstd patch-from, side by side in one run.

    .venv/bin/python bench/updates_bench.py            # prints a markdown section

Figures: (1) bytes of a check with nothing new; (2) bytes in total, metadata included, to
add one hash to a 100,000-hash list kept in 16 shards (and, for comparison, in one file);
(3) delta size for a changed 1 MB model; (4) time and peak memory to make and apply a delta
to a 100,000-hash list (one file, 7.6 MB). Bytes are counted by the client's fetcher (the
bodies it reads: TLS and HTTP headers add a few hundred bytes per request). The client runs
against the repository as a folder (``--from``), which moves exactly the same files.
"""

from __future__ import annotations

import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aegis_engine.content import bundled_resources  # noqa: E402
from aegis_engine.paths import AegisPaths  # noqa: E402
from aegis_engine.repo.publish import release  # noqa: E402
from aegis_engine.repo.tufrepo import TufRepo  # noqa: E402
from aegis_engine.updates.client import UpdateClient  # noqa: E402
from aegis_engine.updates.seal import seal  # noqa: E402

N_HASHES = 100_000
SHARDS = 16


def hash_lines(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [
        f"{rng.randbytes(32).hex()}:{rng.randrange(100, 10**7)}:Bench.Sig.{i}\n" for i in range(n)
    ]


def base_content(dest: Path, lines: list[str], sharded: bool) -> None:
    src = bundled_resources()
    for top in ("rules", "model"):
        shutil.copytree(src / top, dest / top)
    shutil.copy2(src / "behaviour_rules.toml", dest / "behaviour_rules.toml")
    (dest / "hashes").mkdir()
    shutil.copy2(src / "hashes" / "aegis-testfiles.hsb", dest / "hashes")
    write_hashes(dest, lines, sharded)


def write_hashes(dest: Path, lines: list[str], sharded: bool) -> None:
    if not sharded:
        (dest / "hashes" / "bench-all.hsb").write_text("".join(sorted(lines)))
        return
    shards: dict[str, list[str]] = {f"{i:x}": [] for i in range(SHARDS)}
    for line in lines:
        shards[line[0]].append(line)
    for key, part in shards.items():
        (dest / "hashes" / f"bench-{key}.hsb").write_text("".join(sorted(part)))


def check(repo: Path, home: Path) -> tuple[str, int, float]:
    paths = AegisPaths.under(home)
    root = (repo / "metadata" / "1.root.json").read_bytes()
    t = time.perf_counter()
    result = UpdateClient.from_dir(paths, repo, root).run()
    return result.result, result.bytes_downloaded, time.perf_counter() - t


def scenario(work: Path, sharded: bool) -> dict[str, object]:
    tag = "sharded" if sharded else "one-file"
    repo, keys, home = work / f"repo-{tag}", work / f"keys-{tag}", work / f"home-{tag}"
    lines = hash_lines(N_HASHES, 1)
    c1 = work / f"c1-{tag}"
    base_content(c1, lines, sharded)
    TufRepo(repo, keys).init()
    release(repo, keys, c1)
    first = check(repo, home)
    noop = check(repo, home)
    c2 = work / f"c2-{tag}"
    shutil.copytree(c1, c2)
    write_hashes(c2, [*lines, *hash_lines(1, 2)], sharded)
    t = time.perf_counter()
    rep = release(repo, keys, c2)
    publish_s = time.perf_counter() - t
    one = check(repo, home)
    meta = {p.name: p.stat().st_size for p in (repo / "metadata").iterdir()}
    deltas = sorted((repo / "targets" / "deltas").iterdir())
    return {
        "layout": tag,
        "first_install": first,
        "noop": noop,
        "one_hash": one,
        "publish_s": publish_s,
        "index_bytes": rep.index_bytes,
        "delta_files": [(p.name.rsplit(".", 1)[1], p.stat().st_size) for p in deltas],
        "timestamp_bytes": meta["timestamp.json"],
        "snapshot_bytes": meta[f"{rep.version + 1}.snapshot.json"],
        "targets_bytes": meta[f"{rep.version + 1}.targets.json"],
    }


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from aegis_engine.updates.delta import apply_delta, make_delta
op, algo, old_p, new_p, delta_p = sys.argv[2:7]
old = Path(old_p).read_bytes(); new = Path(new_p).read_bytes()
delta = Path(delta_p).read_bytes() if op == "apply" else b""
def hwm():
    return int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
base = hwm()
t = time.perf_counter()
if op == "make":
    out = make_delta(old, new, algo)
    Path(delta_p).write_bytes(out)
elif op == "apply":
    out = apply_delta(old, delta, algo, len(new))
    assert out == new
secs = time.perf_counter() - t
peak = hwm()
print(json.dumps({"secs": secs, "extra_mib": (peak - base) / 1024, "peak_mib": peak / 1024}))
"""


def child(op: str, algo: str, old: Path, new: Path, delta: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), op, algo, str(old), str(new), str(delta)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def delta_costs(work: Path) -> list[dict[str, object]]:
    lines = hash_lines(N_HASHES, 1)
    old = work / "all-old.hsb"
    new = work / "all-new.hsb"
    old.write_text("".join(sorted(lines)))
    new.write_text("".join(sorted([*lines, *hash_lines(1, 2)])))
    rows = []
    for algo in ("bsdiff4", "zstd"):
        d = work / f"all.{algo}"
        made = child("make", algo, old, new, d)
        applied = child("apply", algo, old, new, d)
        rows.append(
            {
                "input": f"100,000-hash list ({old.stat().st_size / 1e6:.1f} MB)",
                "algo": algo,
                "delta": d.stat().st_size,
                "make": made,
                "apply": applied,
            }
        )
    model = bundled_resources() / "model" / "pe_header_gbdt.onnx"
    data = bytearray(model.read_bytes())
    rng = random.Random(3)
    for _ in range(len(data) // 400):  # a retrained model: ~0.25% of its 4-byte values change
        pos = rng.randrange(0, len(data) - 4)
        data[pos : pos + 4] = rng.randbytes(4)
    m_old, m_new = work / "model-old.onnx", work / "model-new.onnx"
    shutil.copy2(model, m_old)
    m_new.write_bytes(bytes(data))
    for algo in ("bsdiff4", "zstd"):
        d = work / f"model.{algo}"
        made = child("make", algo, m_old, m_new, d)
        applied = child("apply", algo, m_old, m_new, d)
        rows.append(
            {
                "input": f"changed model ({len(data) / 1e6:.2f} MB)",
                "algo": algo,
                "delta": d.stat().st_size,
                "make": made,
                "apply": applied,
                "full_sealed": len(seal(bytes(data), 19)),
            }
        )
    return rows


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="aegis-upd-bench."))
    os.environ["AEGIS_HOME"] = str(work / "home-env")
    try:
        t0 = time.time()
        scen = [scenario(work, True), scenario(work, False)]
        costs = delta_costs(work)
        took = time.time() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"## Updates (issue 14) — {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n")
    print(
        "Reproduce: `.venv/bin/python bench/updates_bench.py` "
        f"({took:.0f} s here; {os.cpu_count()} cores, Python {platform.python_version()}).\n"
    )
    print(
        "| content layout | first install | check, nothing new | add one hash: total | "
        "of which metadata (ts + snapshot + targets) | index | delta(s) | publish |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for s in scen:
        f, n, o = s["first_install"], s["noop"], s["one_hash"]
        meta = s["timestamp_bytes"] + s["snapshot_bytes"] + s["targets_bytes"]  # type: ignore[operator]
        deltas = ", ".join(f"{a} {b} B" for a, b in s["delta_files"])  # type: ignore[attr-defined]
        print(
            f"| {s['layout']} | {f[1]:,} B ({f[0]}) | {n[1]:,} B ({n[0]}) "
            f"| **{o[1]:,} B** ({o[0]}) | {meta:,} B | {s['index_bytes']:,} B | {deltas} "
            f"| {s['publish_s']:.1f} s |"
        )
    print()
    print(
        "| input | algorithm | delta bytes | make: s / extra peak MiB | apply: s / extra peak MiB |"
    )
    print("|---|---|---|---|---|")
    for r in costs:
        mk, ap = r["make"], r["apply"]
        extra = f" (full sealed blob {r['full_sealed']:,} B)" if "full_sealed" in r else ""
        print(
            f"| {r['input']} | {r['algo']} | {r['delta']:,}{extra} "  # type: ignore[index]
            f"| {mk['secs']:.2f} / {mk['extra_mib']:.0f} | "  # type: ignore[index]
            f"{ap['secs']:.3f} / {ap['extra_mib']:.0f} |"
        )  # type: ignore[index]


if __name__ == "__main__":
    main()
