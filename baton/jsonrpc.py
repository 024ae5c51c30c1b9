"""JSON-RPC 2.0 codec and dispatcher, sans-IO: bytes in, bytes out, no sockets.

Follows the wire conventions of geth's ``rpc.Server`` as used by op-service (conductor spec §2.1,
ecosystem spec §4):

* single requests, batches (answered in request order) and notifications (never answered);
  an empty batch gets one ``-32600``; a batch of only notifications gets no body at all;
  a batch over ``max_batch_items`` gets a one-element batch with ``-32600 "batch too large"``;
* invalid JSON gets ``-32700`` with ``"id": null``; malformed request objects get ``-32600``;
* unknown methods get ``-32601 "the method X does not exist/is not available"``;
* a handler raising :class:`RpcError` (or one of the ``plain_errors`` types given to the
  :class:`Dispatcher`) is answered with that code (``-32000`` and the error text for plain errors);
  anything else is logged and answered with ``-32603 "internal error"`` (no stack trace leaks);
* a call that exceeds the per-call ``timeout`` gets ``-32002 "request timed out"``; batch answers
  that grow past ``max_batch_response_bytes`` get ``-32003 "response too large"`` for the rest.

Exceptions are mapped to error objects in exactly one place, :meth:`Dispatcher.call`.
The pure helpers (:func:`decode_body`, :func:`parse_message`, :func:`encode_result`,
:func:`encode_error`, :func:`dumps`) let a proxy forward raw bodies and inspect responses.
"""

from __future__ import annotations

import inspect
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

import trio

from baton.log import get_logger

__all__ = [
    "INTERNAL_ERROR",
    "INVALID_PARAMS",
    "INVALID_REQUEST",
    "METHOD_NOT_FOUND",
    "PARSE_ERROR",
    "RESPONSE_TOO_LARGE",
    "SERVER_ERROR",
    "TIMEOUT_ERROR",
    "CallHook",
    "Dispatcher",
    "Fallback",
    "Handler",
    "InternalError",
    "InvalidParams",
    "InvalidRequest",
    "MethodNotFound",
    "Params",
    "ParseError",
    "Request",
    "RequestTimeout",
    "ResponseTooLarge",
    "RpcError",
    "ServerError",
    "decode_body",
    "dumps",
    "encode_error",
    "encode_result",
    "iter_error_codes",
    "lower_camel",
    "parse_message",
    "rpc_method",
]

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603
SERVER_ERROR: Final = -32000
TIMEOUT_ERROR: Final = -32002
RESPONSE_TOO_LARGE: Final = -32003

DEFAULT_MAX_BATCH_ITEMS: Final = 1000
DEFAULT_MAX_BATCH_RESPONSE_BYTES: Final = 25 * 1000 * 1000
DEFAULT_TIMEOUT: Final = 30.0

Params = list[Any] | dict[str, Any]
Handler = Callable[[Params], Awaitable[Any]]
CallHook = Callable[[str, float, int | None], None]

_log = get_logger("jsonrpc")


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------


class RpcError(Exception):
    """A JSON-RPC error object ``{"code", "message", "data"?}`` that a handler may raise."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def server(cls, message: str, data: Any = None) -> ServerError:
        """A geth "plain error": code -32000 with ``message`` as text."""
        return ServerError(message, data)

    def to_dict(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r}, data={self.data!r})"


class ParseError(RpcError):
    def __init__(self, message: str = "Parse error", data: Any = None) -> None:
        super().__init__(PARSE_ERROR, message, data)


class InvalidRequest(RpcError):
    """-32600. ``request_id`` is the id to answer with (``None`` → ``"id": null``)."""

    def __init__(self, message: str = "Invalid Request", data: Any = None, *, request_id: Any = None) -> None:
        super().__init__(INVALID_REQUEST, message, data)
        self.request_id = request_id


class MethodNotFound(RpcError):
    def __init__(self, method: str, data: Any = None) -> None:
        super().__init__(METHOD_NOT_FOUND, f"the method {method} does not exist/is not available", data)
        self.method = method


class InvalidParams(RpcError):
    def __init__(self, message: str = "Invalid params", data: Any = None) -> None:
        super().__init__(INVALID_PARAMS, message, data)


class InternalError(RpcError):
    def __init__(self, message: str = "internal error", data: Any = None) -> None:
        super().__init__(INTERNAL_ERROR, message, data)


class ServerError(RpcError):
    """A plain handler error (geth turns any Go ``error`` into this): code -32000."""

    def __init__(self, message: str, data: Any = None) -> None:
        super().__init__(SERVER_ERROR, message, data)


class RequestTimeout(RpcError):
    def __init__(self, message: str = "request timed out", data: Any = None) -> None:
        super().__init__(TIMEOUT_ERROR, message, data)


class ResponseTooLarge(RpcError):
    def __init__(self, message: str = "response too large", data: Any = None) -> None:
        super().__init__(RESPONSE_TOO_LARGE, message, data)


# ---------------------------------------------------------------------------------------------
# Pure codec helpers
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A well-formed request. ``id`` is meaningless when ``is_notification`` is true."""

    method: str
    params: Params = field(default_factory=list)
    id: Any = None
    is_notification: bool = False

    def to_dict(self) -> dict[str, Any]:
        obj: dict[str, Any] = {"jsonrpc": "2.0", "method": self.method, "params": self.params}
        if not self.is_notification:
            obj["id"] = self.id
        return obj


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON constant {name}")


def decode_body(body: bytes | str) -> Any:
    """Parse a JSON text strictly (no NaN/Infinity); raise :class:`ParseError` on anything bad."""
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError, TypeError):
        raise ParseError() from None


def dumps(obj: Any) -> bytes:
    """Compact, strict JSON encoding (raises ValueError/TypeError for non-JSON values)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def _valid_id(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return value is None or isinstance(value, str | int | float)


def parse_message(obj: Any) -> Request | InvalidRequest:
    """Validate one decoded request object; never raises."""
    if not isinstance(obj, dict):
        return InvalidRequest()
    has_id = "id" in obj
    req_id = obj.get("id")
    answer_id = req_id if has_id and _valid_id(req_id) else None
    if has_id and not _valid_id(req_id):
        return InvalidRequest(request_id=None)
    if obj.get("jsonrpc") != "2.0":
        return InvalidRequest(request_id=answer_id)
    method = obj.get("method")
    if not isinstance(method, str) or not method:
        return InvalidRequest(request_id=answer_id)
    params = obj.get("params")
    if params is None:
        params = []
    elif not isinstance(params, list | dict):
        return InvalidRequest(request_id=answer_id)
    return Request(method=method, params=params, id=req_id, is_notification=not has_id)


def encode_result(req_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "result": result}


def encode_error(req_id: Any, err: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": req_id, "error": err.to_dict()}


# ---------------------------------------------------------------------------------------------
# Method naming
# ---------------------------------------------------------------------------------------------

_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])
_RPC_NAME_ATTR = "__rpc_method_name__"


def lower_camel(snake: str) -> str:
    """``leader_with_id`` → ``leaderWithId`` (use :func:`rpc_method` with a name for ``ID``)."""
    head, *rest = snake.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def rpc_method(name: str | None = None) -> Callable[[_F], _F]:
    """Mark a method of an object for :meth:`Dispatcher.register_namespace`.

    ``name`` is the part after ``<namespace>_``; by default the lowerCamelCase of the Python name.
    """

    def mark(fn: _F) -> _F:
        setattr(fn, _RPC_NAME_ATTR, name if name is not None else lower_camel(fn.__name__))
        return fn

    return mark


_METHOD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.]*$")


# ---------------------------------------------------------------------------------------------
# Dispatcher
# ---------------------------------------------------------------------------------------------

Fallback = Callable[[Request], Awaitable[dict[str, Any]]]


def _log_failure(event: str, **context: Any) -> None:
    """Log at error level; a broken log sink must never turn into a failed RPC call."""
    try:
        _log.error(event, **context)
    except Exception:
        pass


def _unwrap_group(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return exc


class Dispatcher:
    """Routes requests to registered async handlers and encodes their answers.

    Handlers are ``async def handler(params: list | dict) -> result``; they validate their own
    params (see :mod:`baton.params`) and raise :class:`RpcError` for protocol errors, or one of
    ``plain_errors`` (→ -32000 with ``str(exc)``). Given a ``version``, the built-ins
    ``health_status`` (→ version) and ``rpc_modules`` (→ ``{namespace: "1.0"}``) are registered.

    ``fallback`` receives well-formed requests for unregistered methods and returns a response
    object (its ``id`` is replaced with the caller's); it may raise :class:`RpcError`.
    ``on_call(method, seconds, error_code | None)`` is called after every call (for metrics);
    methods that are neither registered nor handled by a fallback are reported as ``"unknown"``
    to keep label cardinality bounded.
    """

    def __init__(
        self,
        *,
        version: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
        max_batch_items: int = DEFAULT_MAX_BATCH_ITEMS,
        max_batch_response_bytes: int = DEFAULT_MAX_BATCH_RESPONSE_BYTES,
        plain_errors: tuple[type[Exception], ...] = (),
        fallback: Fallback | None = None,
        on_call: CallHook | None = None,
    ) -> None:
        self.timeout = timeout
        self.max_batch_items = max_batch_items
        self.max_batch_response_bytes = max_batch_response_bytes
        self.plain_errors = plain_errors
        self.fallback = fallback
        self.on_call = on_call
        self._handlers: dict[str, Handler] = {}
        if version is not None:
            self.register("health_status", self._health_status)
            self.register("rpc_modules", self._rpc_modules)
        self._version = version

    # -- registration -------------------------------------------------------------------------

    def register(self, name: str, handler: Handler) -> None:
        """Register ``handler`` as ``name`` (by convention ``namespace_method``); duplicates are a bug."""
        if not _METHOD_NAME.match(name):
            raise ValueError(f"invalid JSON-RPC method name {name!r}")
        if name in self._handlers:
            raise ValueError(f"JSON-RPC method {name!r} registered twice")
        self._handlers[name] = handler

    def register_namespace(self, prefix: str, obj: object) -> list[str]:
        """Register every :func:`rpc_method`-marked coroutine method of ``obj`` as ``prefix_name``."""
        names: list[str] = []
        for attr in dir(type(obj)):
            fn = getattr(type(obj), attr, None)
            rpc_name = getattr(fn, _RPC_NAME_ATTR, None)
            if rpc_name is None:
                continue
            bound = getattr(obj, attr)
            if not inspect.iscoroutinefunction(bound):
                raise TypeError(f"{type(obj).__name__}.{attr} is marked @rpc_method but is not async")
            full = f"{prefix}_{rpc_name}"
            self.register(full, bound)
            names.append(full)
        return sorted(names)

    @property
    def methods(self) -> list[str]:
        return sorted(self._handlers)

    def modules(self) -> dict[str, str]:
        """``{namespace: "1.0"}`` for every namespace with a registered method (geth ``rpc_modules``)."""
        namespaces = {name.split("_", 1)[0] for name in self._handlers if "_" in name}
        return {ns: "1.0" for ns in sorted(namespaces)}

    async def _health_status(self, params: Params) -> Any:
        return self._version

    async def _rpc_modules(self, params: Params) -> Any:
        return self.modules()

    # -- calls --------------------------------------------------------------------------------

    async def call(self, req: Request) -> dict[str, Any]:
        """Run one request and return its response object (also for notifications)."""
        response, _ = await self._call(req)
        return response

    async def _call(self, req: Request) -> tuple[dict[str, Any], bytes]:
        """Run one request; the only place where exceptions become error objects."""
        handler = self._handlers.get(req.method)
        label = req.method if handler is not None or self.fallback is not None else "unknown"
        started = time.monotonic()
        err: RpcError | None = None
        response: dict[str, Any] | None = None
        try:
            with trio.move_on_after(self.timeout if self.timeout is not None else float("inf")) as scope:
                if handler is not None:
                    response = encode_result(req.id, await handler(req.params))
                elif self.fallback is not None:
                    response = dict(await self.fallback(req))
                    response["jsonrpc"] = "2.0"
                    response["id"] = req.id
                else:
                    raise MethodNotFound(req.method)
            if scope.cancelled_caught:
                err = RequestTimeout()
        except Exception as raw:
            exc = _unwrap_group(raw)
            if isinstance(exc, RpcError):
                err = exc
            elif self.plain_errors and isinstance(exc, self.plain_errors):
                err = ServerError(str(exc))
            else:
                _log_failure("rpc_handler_failed", exc_info=raw, method=req.method)
                err = InternalError()
        encoded = b""
        if err is None and response is not None:
            try:
                encoded = dumps(response)
            except (ValueError, TypeError, RecursionError) as exc:
                _log_failure("rpc_result_not_json", method=req.method, error=str(exc))
                err = InternalError()
        if err is not None or response is None:
            response = encode_error(req.id, err if err is not None else InternalError())
            encoded = dumps(response)
        if self.on_call is not None:
            try:
                self.on_call(label, time.monotonic() - started, _response_error_code(response))
            except Exception as exc:
                _log_failure("rpc_on_call_hook_failed", exc_info=exc, method=label)
        return response, encoded

    async def handle_body(self, body: bytes) -> bytes | None:
        """Handle an HTTP request body; return the response body, or None (notifications only)."""
        try:
            obj = decode_body(body)
        except ParseError as exc:
            return dumps(encode_error(None, exc))
        return await self.handle_value(obj)

    async def handle_value(self, obj: Any) -> bytes | None:
        """Like :meth:`handle_body` for an already decoded message (object or batch)."""
        if isinstance(obj, list):
            return await self._handle_batch(obj)
        return await self._handle_single(obj)

    async def _handle_single(self, obj: Any) -> bytes | None:
        parsed = parse_message(obj)
        if isinstance(parsed, InvalidRequest):
            return dumps(encode_error(parsed.request_id, parsed))
        _, encoded = await self._call(parsed)
        return None if parsed.is_notification else encoded

    async def _handle_batch(self, items: list[Any]) -> bytes | None:
        if not items:
            return dumps(encode_error(None, InvalidRequest()))
        if len(items) > self.max_batch_items:
            first_id = None
            for item in items:
                parsed = parse_message(item)
                if isinstance(parsed, Request) and not parsed.is_notification:
                    first_id = parsed.id
                    break
            return dumps([encode_error(first_id, InvalidRequest("batch too large"))])
        results: list[bytes | None] = [None] * len(items)

        async def run(index: int, obj: Any) -> None:
            results[index] = await self._handle_single(obj)

        async with trio.open_nursery() as nursery:
            for index, obj in enumerate(items):
                nursery.start_soon(run, index, obj)
        answers = [r for r in results if r is not None]
        if not answers:
            return None
        # geth: once the answers exceed the limit, every further answer becomes -32003.
        total = 0
        for i, answer in enumerate(answers):
            if total > self.max_batch_response_bytes:
                answers[i] = dumps(encode_error(json.loads(answer).get("id"), ResponseTooLarge()))
            else:
                total += len(answer)
        return b"[" + b",".join(answers) + b"]"


def _response_error_code(response: dict[str, Any]) -> int | None:
    error = response.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        return code if isinstance(code, int) and not isinstance(code, bool) else INTERNAL_ERROR
    return None


def iter_error_codes(answer: Any) -> Iterable[int | None]:
    """Error codes (None for successes) of a decoded response or batch response; for proxies/tests."""
    items = answer if isinstance(answer, list) else [answer]
    for item in items:
        yield _response_error_code(item) if isinstance(item, dict) else INTERNAL_ERROR
