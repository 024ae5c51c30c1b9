"""Single-server membership changes (Raft thesis §4.1) with hashicorp/raft's
semantics (AddVoter promotes a non-voter or updates an address, AddNonvoter never
demotes, DemoteVoter, RemoveServer) and quorum arithmetic over voters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum
from typing import TypeVar

from conductor.raft.types import Configuration, RaftError, Server, Suffrage

_N = TypeVar("_N", int, float)


class ChangeOp(Enum):
    ADD_VOTER = "add_voter"
    ADD_NONVOTER = "add_nonvoter"
    DEMOTE_VOTER = "demote_voter"
    REMOVE_SERVER = "remove_server"


def next_configuration(
    cur: Configuration, op: ChangeOp, server_id: str, address: str, index: int
) -> Configuration:
    """The configuration after `op`, to be stored in the log entry at `index`."""
    servers = list(cur.servers)
    pos = next((k for k, s in enumerate(servers) if s.id == server_id), None)
    if op is ChangeOp.ADD_VOTER:
        if pos is None:
            servers.append(Server(server_id, address, Suffrage.VOTER))
        else:
            servers[pos] = Server(server_id, address, Suffrage.VOTER)
    elif op is ChangeOp.ADD_NONVOTER:
        if pos is None:
            servers.append(Server(server_id, address, Suffrage.NONVOTER))
        else:
            servers[pos] = Server(server_id, address, servers[pos].suffrage)
    elif op is ChangeOp.DEMOTE_VOTER:
        if pos is not None:
            old = servers[pos]
            servers[pos] = Server(old.id, old.address, Suffrage.NONVOTER)
    elif op is ChangeOp.REMOVE_SERVER and pos is not None:
        del servers[pos]
    new = Configuration(servers=tuple(servers), index=index)
    check_configuration(new.servers)
    return new


def check_configuration(servers: Sequence[Server]) -> None:
    ids: set[str] = set()
    for s in servers:
        if not s.id:
            raise RaftError("empty server id in configuration")
        if s.id in ids:
            raise RaftError(f"found duplicate ID in configuration: {s.id}")
        ids.add(s.id)
    if not any(s.suffrage == Suffrage.VOTER for s in servers):
        raise RaftError("need at least one voter in configuration")


def quorum_size(voters: int) -> int:
    return voters // 2 + 1


def quorum_value(values: Iterable[_N]) -> _N | None:
    """The largest v such that a quorum of the values is >= v (None without values): the
    leader's commit index over match indices, its quorum contact time over contact times."""
    vs = sorted(values, reverse=True)
    if not vs:
        return None
    return vs[quorum_size(len(vs)) - 1]
