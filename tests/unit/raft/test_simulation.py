"""Deterministic simulation of the Raft core under faults (see sim.py for what is
checked). `pytest --seeds N` runs N seeds (default 500); `pytest --seed S` replays one.
A failure prints the seed, the replay command and the tail of the event trace."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from conductor.raft.core import RaftCore
from conductor.raft.messages import PreVoteRequest, VoteRequest
from conductor.raft.types import RaftConfig, RestoredState

from .cluster import SafetyViolation
from .sim import MIXES, Sim

DEFAULT_SEEDS = 500


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_seed" in metafunc.fixturenames:
        one = metafunc.config.getoption("seed")
        n = metafunc.config.getoption("seeds")
        seeds = [one] if one is not None else list(range(DEFAULT_SEEDS if n is None else n))
        metafunc.parametrize("sim_seed", seeds, ids=[f"seed_{s}" for s in seeds])


def test_simulation(sim_seed: int) -> None:
    Sim(sim_seed).run()


def test_simulation_is_deterministic() -> None:
    a, b = Sim(5), Sim(5)
    a.run()
    b.run()
    assert a.stats == b.stats and list(a.trace) == list(b.trace) and a.committed == b.committed


def test_simulation_exercises_every_feature() -> None:
    total: Counter[str] = Counter()
    for seed in range(36):
        sim = Sim(seed)
        sim.run()
        total += sim.stats
    for what in (
        "acked",
        "elected",
        "crash",
        "partition",
        "membership",
        "transfer",
        "read_ok",
        "compact",
        "snapshot_installed",
        "truncate",
        "stale_guard",
        "unreachable",
        "send_before_persist",
        "crash_before_own_fsync",
    ):
        assert total[what] > 0, f"no {what} in 36 seeds: {total}"


# ---------------------------------------------------------------- the checker can fail


class CommitsWithoutQuorum(RaftCore):
    """Bug: the leader treats everything it appended as committed."""

    def maybe_commit(self, now: float) -> bool:
        last = self.log.last_index()
        if last > self.commit and self.log.term_at(last) == self.term:
            self.commit = last
            self.after_commit(now)
            return True
        return False


class VotesForEveryone(RaftCore):
    """Bug: grants every (pre-)vote request, even after voting in this term."""

    def handle_vote_request(self, m: PreVoteRequest | VoteRequest, now: float) -> None:
        self.vote = None
        self.leader_id = None
        super().handle_vote_request(m, now)


def _first_violation(factory: type[RaftCore], mix_name: str, seeds: int) -> SafetyViolation | None:
    mix = next(m for m in MIXES if m.name == mix_name)
    for seed in range(seeds):

        def make(i: str, c: RaftConfig, r: RestoredState, g: random.Random, t: float) -> RaftCore:
            return factory(i, c, r, g, t)

        try:
            Sim(seed, mix, core_factory=make).run()
        except SafetyViolation as exc:
            return exc
    return None


def test_checker_catches_commit_without_quorum() -> None:
    exc = _first_violation(CommitsWithoutQuorum, "partitions", 40)
    assert exc is not None, "a leader committing without quorum went unnoticed"
    text = str(exc)
    assert "replay: pytest tests/unit/raft/test_simulation.py --seed" in text and "trace tail" in text


def test_checker_catches_double_voting() -> None:
    exc = _first_violation(VotesForEveryone, "chaos", 60)
    assert exc is not None, "double voting went unnoticed"
