"""Training data: families, the per-source train / held-out split, the corpus layout."""

from __future__ import annotations

import random
from pathlib import Path

from tools.ml.dataset import (
    assign_splits,
    corpus_layout,
    family_of,
    index_corpora,
)


def test_family_of_groups_builds_of_one_program() -> None:
    assert family_of("d3dx9_24.dll") == family_of("d3dx9_43.dll") == "d3dx"
    same = ("zlib-x86-ansi", "zlib_solid-amd64-unicode", "zlib-x86-unicode")
    assert {family_of(f"usr__share__nsis__Stubs__{n}") for n in same} == {"zlib"}
    launchers = ("cli.exe", "cli-32.exe", "cli-64.exe", "cli-arm64.exe")
    assert {family_of(n) for n in launchers} == {"cli"}
    assert family_of("gui-arm64.exe") == "gui"
    assert family_of("libgcc_s_seh-1.dll") != family_of("libstdc++-6.dll")


def test_every_source_with_two_families_has_both_halves() -> None:
    pairs = [("big", f"fam{i}") for i in range(50)]
    pairs += [("two", "a"), ("two", "b"), ("one", "only")]
    splits = assign_splits(pairs)
    for source in ("big", "two"):
        halves = {v for (s, _), v in splits.items() if s == source}
        assert halves == {"train", "holdout"}, source
    assert splits[("one", "only")] == "holdout"  # a lone family is never trained on
    big = [v for (s, _), v in splits.items() if s == "big"]
    assert big.count("holdout") == big.count("train") == 25


def test_splits_do_not_depend_on_order_or_duplicates() -> None:
    pairs = [(s, f"f{i}") for s in ("x", "y") for i in range(9)]
    shuffled = pairs * 3
    random.Random(1).shuffle(shuffled)
    assert assign_splits(pairs) == assign_splits(shuffled)
    # The same family name in two sources is two families.
    assert len(assign_splits(pairs)) == 18


def write_pe(path: Path, tag: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"MZ" + tag + bytes(100))


def test_corpus_layout_and_deduplication(tmp_path: Path) -> None:
    wine, extra = tmp_path / "wine", tmp_path / "extra"
    write_pe(wine / "a__kernel32.dll", b"k")
    write_pe(wine / "b__d3dx9_24.dll", b"d")
    write_pe(extra / "nsis" / "Stubs__zlib-x86-ansi", b"z")
    write_pe(extra / "efi" / "shim" / "shimx64.efi", b"s")
    write_pe(extra / "efi" / "shim" / "mmx64.efi.signed", b"m")
    write_pe(extra / "efi" / "grub" / "grubx64.efi", b"g")
    write_pe(extra / "efi" / "grub" / "copy-of-kernel32.efi", b"k")  # same bytes as wine's
    (extra / "SOURCES.tsv").write_text("not a PE file\n")
    (extra / "nsis" / "README").write_text("not a PE file either\n")

    layout = {(p.name, s, f) for p, s, f in corpus_layout(wine, extra)}
    assert ("shimx64.efi", "efi", "shim") in layout
    assert ("mmx64.efi.signed", "efi", "shim") in layout  # a project folder is one family
    assert ("Stubs__zlib-x86-ansi", "nsis", "zlib") in layout  # a file: family from its name
    assert ("b__d3dx9_24.dll", "wine", "d3dx") in layout
    assert len(layout) == 7

    entries = index_corpora(wine, extra)
    assert len(entries) == 6  # the copy of kernel32.dll is dropped, the wine one kept
    assert [e.source for e in entries if e.path.name.endswith("kernel32.dll")] == ["wine"]
    efi = {e.family: e.split for e in entries if e.source == "efi"}
    assert sorted(efi.values()) == ["holdout", "train"]
    shim = {e.split for e in entries if e.family == "shim"}
    assert len(shim) == 1  # signed and unsigned shim on one side
    assert index_corpora(wine, extra) == entries
    # Without the wine corpus the efi copy is the first one, so it is kept.
    assert [e.source for e in index_corpora(None, extra)] == ["efi"] * 4 + ["nsis"]
