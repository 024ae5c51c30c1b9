"""Async JSON-RPC 2.0 client over HTTP (httpx under trio) with a deadline per call.

Two failure kinds are kept apart, because callers react differently to them:

* :class:`RpcClientError` — the server answered with a JSON-RPC error object
  (``code``, ``message``, ``data``), e.g. -32000 "node is not the leader";
* :class:`RpcTransportError` — no usable answer: connection refused/reset, timeout,
  non-200 status, a body that is not JSON-RPC, or a body over ``max_response_bytes``.

Both derive from :class:`RpcCallFailed`. Usage::

    async with RpcClient("http://127.0.0.1:8547", timeout=1.0) as rpc:
        leader = await rpc.call("conductor_leader")
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Final, Self

import httpx
import trio

from baton.jsonrpc import dumps

__all__ = ["RpcCallFailed", "RpcClient", "RpcClientError", "RpcTransportError"]

DEFAULT_MAX_RESPONSE_BYTES: Final = 128 * 1024 * 1024


class RpcCallFailed(Exception):
    """Base class of every failure raised by :class:`RpcClient`."""


class RpcClientError(RpcCallFailed):
    """The server answered with a JSON-RPC error object."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RpcClientError):
            return NotImplemented
        return (self.code, self.message, self.data) == (other.code, other.message, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.message))


class RpcTransportError(RpcCallFailed):
    """No usable JSON-RPC answer (network error, timeout, HTTP status, malformed body)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def _error_from(obj: Any) -> RpcClientError:
    if not isinstance(obj, dict):
        raise RpcTransportError(f"malformed JSON-RPC error object: {obj!r:.200}")
    code = obj.get("code")
    message = obj.get("message")
    if not isinstance(code, int) or isinstance(code, bool):
        raise RpcTransportError(f"malformed JSON-RPC error code: {code!r:.200}")
    return RpcClientError(code, message if isinstance(message, str) else str(message), obj.get("data"))


def _outcome(response: Any) -> Any:
    """The result of one response object, or the RpcClientError it carries (returned, not raised)."""
    if not isinstance(response, dict):
        raise RpcTransportError(f"malformed JSON-RPC response: {response!r:.200}")
    if response.get("error") is not None:
        return _error_from(response["error"])
    if "result" not in response:
        raise RpcTransportError("JSON-RPC response has neither result nor error")
    return response["result"]


class RpcClient:
    """A JSON-RPC client for one HTTP endpoint; call :meth:`aclose` (or use ``async with``)."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 10.0,
        headers: Mapping[str, str] | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.max_response_bytes = max_response_bytes
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._owns_client = client is None
        # The deadline is enforced per call with trio (covering pool wait, connect, write and read).
        self._client = client if client is not None else httpx.AsyncClient(timeout=None)
        self._ids = itertools.count(1)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    # -- calls --------------------------------------------------------------------------------

    async def call(self, method: str, *params: Any) -> Any:
        """Call ``method`` with positional ``params``; return its result or raise."""
        return await self.call_with(method, list(params))

    async def call_with(self, method: str, params: Sequence[Any] | Mapping[str, Any]) -> Any:
        """Call ``method`` with a params list or object."""
        req_id = next(self._ids)
        answer = await self._post(self._request(method, params, req_id))
        if isinstance(answer, dict) and answer.get("id") not in (req_id, None):
            got = answer.get("id")
            raise RpcTransportError(f"response id {got!r:.50} does not match request id {req_id}")
        outcome = _outcome(answer)
        if isinstance(outcome, RpcClientError):
            raise outcome
        return outcome

    async def notify(self, method: str, *params: Any) -> None:
        """Send a notification (no id, no answer expected)."""
        await self._post({"jsonrpc": "2.0", "method": method, "params": list(params)}, expect_body=False)

    async def batch(
        self, calls: Sequence[tuple[str, Sequence[Any] | Mapping[str, Any]]]
    ) -> list[Any | RpcClientError]:
        """Send ``calls`` as one batch; return results in call order, JSON-RPC errors as values.

        A whole-batch failure (e.g. "batch too large", which geth answers with one error)
        is raised as :class:`RpcClientError`.
        """
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        payload = [self._request(m, p, i) for (m, p), i in zip(calls, ids, strict=True)]
        answer = await self._post(payload)
        if isinstance(answer, dict):
            outcome = _outcome(answer)
            if isinstance(outcome, RpcClientError):
                raise outcome
            raise RpcTransportError("batch answered with a single result")
        if not isinstance(answer, list):
            raise RpcTransportError("batch answer is not a JSON array")
        by_id: dict[Any, Any] = {}
        for item in answer:
            if not isinstance(item, dict):
                raise RpcTransportError(f"malformed batch item: {item!r:.200}")
            by_id[item.get("id")] = item
        if len(answer) == 1 and len(ids) > 1 and answer[0].get("error") is not None:
            raise _error_from(answer[0]["error"])  # geth's one-element "batch too large" answer
        missing = [i for i in ids if i not in by_id]
        if missing:
            raise RpcTransportError(f"batch answer lacks ids {missing[:5]}")
        return [_outcome(by_id[i]) for i in ids]

    # -- transport ----------------------------------------------------------------------------

    @staticmethod
    def _request(method: str, params: Sequence[Any] | Mapping[str, Any], req_id: int) -> dict[str, Any]:
        value: Any = dict(params) if isinstance(params, Mapping) else list(params)
        return {"jsonrpc": "2.0", "id": req_id, "method": method, "params": value}

    async def _post(self, payload: Any, *, expect_body: bool = True) -> Any:
        try:
            body = dumps(payload)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"JSON-RPC params are not JSON-encodable: {exc}") from exc
        try:
            with trio.fail_after(self.timeout):
                async with self._client.stream("POST", self.url, content=body, headers=self._headers) as resp:
                    data = bytearray()
                    async for chunk in resp.aiter_bytes():
                        data += chunk
                        if len(data) > self.max_response_bytes:
                            limit = self.max_response_bytes
                            raise RpcTransportError(f"response larger than {limit} bytes")
                    status = resp.status_code
        except (trio.TooSlowError, httpx.TimeoutException):
            raise RpcTransportError(f"request to {self.url} timed out after {self.timeout}s") from None
        except httpx.HTTPError as exc:
            raise RpcTransportError(f"request to {self.url} failed: {type(exc).__name__}: {exc}") from exc
        if status != 200:
            raise RpcTransportError(f"HTTP {status}: {bytes(data[:200])!r}", status=status)
        if not expect_body:
            return None
        try:
            return json.loads(data)
        except (ValueError, RecursionError):
            snippet = bytes(data[:200])
            raise RpcTransportError(f"invalid JSON in response: {snippet!r}", status=status) from None
