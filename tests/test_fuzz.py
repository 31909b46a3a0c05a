"""Fuzzing every reader of untrusted input: any bytes give a result or an openfer error that
names the file; never another exception, never a hang.

The targets and the corpus live in ``fuzz/`` (shared with the longer runs there:
``fuzz/run_corpus.py`` and the coverage-guided ``fuzz/atheris_fuzz.py``)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fuzz"))
from corpus import IMAGE_TARGETS, SEEDS, TEXT_TARGETS, _mutate, corpus  # noqa: E402
from run_corpus import classify  # noqa: E402
from targets import TARGETS  # noqa: E402

BUGS = ("uncaught", "timeout", "error-unnamed")
FAST_TARGETS = sorted(set(TARGETS) - {"predict"})
_seeds: dict[str, list[bytes]] = {}


def _check(target: str, data: bytes, directory: Path) -> str:
    path = directory / f"input{TARGETS[target][0]}"
    path.write_bytes(data)
    outcome, detail = classify(target, path, timeout=20)
    assert not outcome.startswith(BUGS), f"{target}: {outcome}\n{detail}"
    return outcome


def test_the_valid_seeds_are_read():
    for target in TARGETS:
        _seeds[target] = SEEDS[target]()
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        for target, seeds in _seeds.items():
            for data in seeds:
                assert _check(target, data, Path(tmp)) == "ok", target


@pytest.mark.parametrize("target", FAST_TARGETS)
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.binary(max_size=3000))
def test_random_bytes(target, data, tmp_path_factory):
    _check(target, data, tmp_path_factory.mktemp("fuzz", numbered=True))


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(rng=st.randoms(use_true_random=False), rounds=st.integers(1, 4))
def test_mutated_valid_files(target, rng: random.Random, rounds, tmp_path_factory):
    seeds = _seeds.get(target) or SEEDS[target]()
    _seeds[target] = seeds
    data = rng.choice(seeds)
    for _ in range(rounds):
        _, data = _mutate(data, rng, target in TEXT_TARGETS, target in IMAGE_TARGETS)
    _check(target, data, tmp_path_factory.mktemp("fuzz", numbered=True))


def test_a_generated_corpus_of_100_malformed_inputs_per_target(tmp_path):
    outcomes = {}
    for target, name, data in corpus(100, seed=2024):
        path = tmp_path / f"{name}{TARGETS[target][0]}"
        path.write_bytes(data)
        outcome, detail = classify(target, path, timeout=20)
        assert not outcome.startswith(BUGS), f"{name}: {outcome}\n{detail}"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        path.unlink()
    assert sum(outcomes.values()) == 100 * len(TARGETS) >= 1900
    assert outcomes["error"] > 0.65 * 100 * len(TARGETS)   # most are refused, naming the file
