"""A do-nothing py-libp2p network notifee to subclass: override only the events you need.

py-libp2p calls every method of a registered notifee (`connected`, `disconnected`, `opened_stream`,
`closed_stream`, `listen`, `listen_close`); the gater and the static-peer dialer each care about one or
two of them.
"""

from __future__ import annotations

from typing import Any


class NullNotifee:
    """Every network event is ignored unless a subclass overrides it."""

    async def connected(self, network: Any, conn: Any) -> None:
        pass

    async def disconnected(self, network: Any, conn: Any) -> None:
        pass

    async def opened_stream(self, network: Any, stream: Any) -> None:
        pass

    async def closed_stream(self, network: Any, stream: Any) -> None:
        pass

    async def listen(self, network: Any, multiaddr: Any) -> None:
        pass

    async def listen_close(self, network: Any, multiaddr: Any) -> None:
        pass
