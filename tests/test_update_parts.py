"""The pure parts of updates: sealing, deltas, the index (no network, no repository)."""

from __future__ import annotations

import json
import os

import pytest

from aegis_engine.errors import ContentError
from aegis_engine.updates.delta import apply_delta, best_delta, make_delta
from aegis_engine.updates.index import ContentIndex, FileEntry
from aegis_engine.updates.seal import seal, unseal

EICAR_RULE = b'rule t { strings: $a = "EICAR-STANDARD-ANTIVIRUS-TEST-FILE" condition: $a }'


def test_seal_hides_every_plain_byte_run_and_round_trips() -> None:
    data = EICAR_RULE * 50 + os.urandom(1000)
    sealed = seal(data)
    assert unseal(sealed) == data
    assert b"EICAR" not in sealed and b"rule t" not in sealed


def test_unseal_refuses_damage_and_bombs() -> None:
    sealed = bytearray(seal(b"x" * 100_000))
    with pytest.raises(ContentError):
        unseal(bytes(sealed), max_size=1000)  # decompresses past the limit
    sealed[-5] ^= 0xFF
    with pytest.raises(ContentError):
        unseal(bytes(sealed))
    with pytest.raises(ContentError):
        unseal(b"plain text")


@pytest.mark.parametrize("algo", ["bsdiff4", "zstd"])
def test_deltas_round_trip_and_refuse_garbage(algo: str) -> None:
    old = b"".join(os.urandom(32).hex().encode() + b":*:S\n" for _ in range(2000))
    new = old[:30_000] + b"ab" * 32 + b":*:New\n" + old[30_000:]
    delta = make_delta(old, new, algo)
    assert len(delta) < 2000
    assert apply_delta(old, delta, algo, len(new)) == new
    with pytest.raises(ContentError):
        apply_delta(old, delta, algo, len(new) + 1)
    with pytest.raises(ContentError):
        apply_delta(old, b"garbage" * 10, algo, len(new))


def test_best_delta_is_the_smaller() -> None:
    old = os.urandom(50_000)
    new = old[:25_000] + b"changed" + old[25_000:]
    algo, delta = best_delta(old, new) or ("", b"")
    assert len(delta) == min(len(make_delta(old, new, a)) for a in ("bsdiff4", "zstd"))
    assert apply_delta(old, delta, algo, len(new)) == new


def test_index_round_trip_and_refuses_unsafe_paths() -> None:
    entry = FileEntry("a" * 64, 10, 20, "b" * 64)
    index = ContentIndex(3, "2026-01-01T00:00:00Z", {"hashes/x.hsb": entry})
    again = ContentIndex.from_json(index.to_json())
    assert again == index and again.digest == index.digest
    for bad in ("../etc/passwd", "/abs/rules.yar", "icons/a.svg", "rules/../../x"):
        doc = json.loads(index.to_json())
        doc["files"] = {bad: doc["files"]["hashes/x.hsb"]}
        with pytest.raises(ContentError):
            ContentIndex.from_json(json.dumps(doc).encode())
    with pytest.raises(ContentError):
        ContentIndex.from_json(b"{not json")
