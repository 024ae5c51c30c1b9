"""MeshTimes: `timeInMesh` as a duration of continuous mesh membership."""

from p2p.meshtime import MeshTimes


def test_time_grows_while_in_mesh_and_resets_after_leaving() -> None:
    t = MeshTimes()
    t.observe({"a": {"p1"}, "b": set()}, now=100.0)
    assert t.seconds("p1", ["a", "b"], now=100.0) == 0.0
    t.observe({"a": {"p1"}, "b": {"p1"}}, now=105.0)
    assert t.seconds("p1", ["a", "b"], now=110.0) == 10.0  # max over topics: "a" since 100
    assert t.seconds("p1", ["b"], now=110.0) == 5.0
    t.observe({"a": set(), "b": {"p1"}}, now=111.0)
    assert t.seconds("p1", ["a"], now=112.0) == 0.0
    t.observe({"a": {"p1"}}, now=120.0)
    assert t.seconds("p1", ["a"], now=121.0) == 1.0  # a re-join starts a new interval


def test_unknown_peer_is_zero() -> None:
    assert MeshTimes().seconds("nobody", ["a"], now=5.0) == 0.0
