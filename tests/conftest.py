"""Repository-wide pytest options: `--seeds N` / `--seed S` for the Raft simulation."""

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("raft simulation")
    group.addoption("--seeds", type=int, default=None, help="number of Raft simulation seeds to run")
    group.addoption("--seed", type=int, default=None, help="run only this Raft simulation seed")
