"""p2p.banning: round-robin score policy and the trio loop (with injected time)."""

from __future__ import annotations

import math

import pytest
import trio

from p2p.banning import BanMonitor, run_ban_monitor


def test_round_robin_visits_every_peer_in_turn() -> None:
    m = BanMonitor()
    peers = ["c", "a", "b"]
    assert [m.next_peer(peers) for _ in range(4)] == ["a", "b", "c", "a"]
    # a peer leaving / joining does not reset the rotation
    assert m.next_peer(["a", "c", "d"]) == "c"
    assert m.next_peer(["a", "c", "d"]) == "d"
    assert m.next_peer([]) is None


def test_decide_threshold_is_strict_and_protection_exempts() -> None:
    m = BanMonitor(threshold=-100, duration=3600)
    assert m.decide("p", -100.0, False, 10.0) is None
    d = m.decide("p", -100.5, False, 10.0)
    assert d is not None and d.until == 3610.0 and d.peer_id == "p"
    assert m.decide("p", -1e9, True, 10.0) is None  # static / protected
    assert m.decide("p", None, False, 10.0) is None  # unknown score
    assert m.decide("p", math.nan, False, 10.0) is None


def test_step_combines_rotation_and_policy() -> None:
    m = BanMonitor()
    scores = {"a": 0.0, "b": -500.0, "c": -500.0}
    protected = {"c"}
    decisions = [m.step(sorted(scores), scores.get, protected.__contains__, 0.0) for _ in range(3)]
    assert [d.peer_id if d else None for d in decisions] == [None, "b", None]


def test_invalid_duration() -> None:
    with pytest.raises(ValueError):
        BanMonitor(duration=0)


async def test_loop_bans_low_scoring_peer_once_per_visit() -> None:
    banned: list[tuple[str, float]] = []
    connected = ["good", "bad", "static"]
    scores = {"good": 5.0, "bad": -200.0, "static": -200.0}

    first_ban = trio.Event()

    async def ban(peer: str, until: float) -> None:
        banned.append((peer, until))
        connected.remove(peer)
        first_ban.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_ban_monitor(
                    BanMonitor(),
                    connected_peers=lambda: list(connected),
                    score_of=scores.get,
                    is_protected=lambda p: p == "static",
                    ban=ban,
                    clock=lambda: 1000.0,
                    interval=0.01,
                    task_status=task_status,
                )
            )
            await first_ban.wait()
            await trio.sleep(0.1)  # several more rounds: no further bans
            nursery.cancel_scope.cancel()
    assert banned == [("bad", 4600.0)]


async def test_loop_survives_callback_errors() -> None:
    calls = 0

    def connected() -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return ["p"]

    banned: list[str] = []
    done = trio.Event()

    async def ban(peer: str, until: float) -> None:
        banned.append(peer)
        done.set()

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(
                lambda task_status: run_ban_monitor(
                    BanMonitor(),
                    connected_peers=connected,
                    score_of=lambda p: -1000.0,
                    is_protected=lambda p: False,
                    ban=ban,
                    interval=0.01,
                    task_status=task_status,
                )
            )
            await done.wait()
            nursery.cancel_scope.cancel()
    assert calls >= 2 and banned[0] == "p"
