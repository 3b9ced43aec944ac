"""Bounded fuzzing in the suite (issue 12): hostile bytes into every parser of untrusted or
damaged input. Each target lists the only errors it may raise (see helpers/fuzz_targets.py);
the long run is ``bench/fuzz_long.py`` (figures in docs/benchmarks.md).

Derandomized so that the suite gives the same answer on every run; the long run is random.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from helpers.fuzz_targets import SEEDS, TARGETS, mutate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

EXAMPLES = 100
_settings = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def inputs(seed_names: tuple[str, ...]) -> st.SearchStrategy[bytes]:
    mutated = st.builds(
        mutate,
        st.sampled_from([SEEDS[n] for n in seed_names]),
        st.lists(st.tuples(st.integers(0, 1 << 16), st.integers(0, 255)), max_size=8),
        st.none() | st.integers(0, 1 << 16),
        st.binary(max_size=64),
    )
    return st.one_of(mutated, st.binary(max_size=4096))


@pytest.mark.parametrize("name", sorted(TARGETS))
def test_fuzz_target(name: str) -> None:
    target, seeds = TARGETS[name]

    @_settings
    @given(inputs(seeds))
    def run(data: bytes) -> None:
        with tempfile.TemporaryDirectory(prefix="aegis-fuzz-") as tmp:
            target(data, Path(tmp))

    run()


def test_seeds_are_accepted() -> None:
    """The seeds are valid inputs, so mutations explore past the magic numbers."""
    for _name, (target, seeds) in TARGETS.items():
        for seed in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                target(SEEDS[seed], Path(tmp))
