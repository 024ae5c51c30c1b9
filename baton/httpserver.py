"""HTTP/1.1 server for JSON-RPC, health and metrics: a small trio shell around h11.

One :class:`HttpServer` serves a fixed routing table ``(method, path) → async handler``; every
request body is read completely (up to ``max_body_bytes``) before its handler runs, and every
handler returns a complete :class:`HttpResponse`. Helpers mount a JSON-RPC
:class:`~baton.jsonrpc.Dispatcher` at ``POST /`` (geth wire conventions), ``GET /healthz``
(op-service: ``{"version": …}``) and ``GET /metrics`` (Prometheus text format). ``HEAD`` is
answered for every ``GET`` route.

Robustness rules: connections are kept alive and served concurrently, each in its own task of the
server's nursery, at most ``max_connections`` at a time; a body over the limit gets 413 and the
connection is closed (its rest is drained for a bounded time only); malformed HTTP gets 400 and a
close; a request that is not fully received within ``request_timeout`` gets 408 and a close; an idle
keep-alive connection is closed after ``keepalive_timeout``; a peer that vanishes only ends its
own connection. Cancelling the surrounding nursery stops the server and closes every socket.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Any, Final

import h11
import prometheus_client
import trio

from baton.jsonrpc import INVALID_REQUEST, Dispatcher
from baton.log import get_logger

if TYPE_CHECKING:
    # The venv's trio-stubs (trio-typing) shadow trio's inline types; its TaskStatus is the one
    # that lets mypy infer `await nursery.start(server.serve, host, port)` as tuple[str, int].
    from trio_typing import TaskStatus

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "HealthCheck",
    "HttpRequest",
    "HttpResponse",
    "HttpServer",
    "RouteHandler",
    "healthz_handler",
    "jsonrpc_handler",
    "metrics_handler",
]

DEFAULT_MAX_BODY_BYTES: Final = 5 * 1024 * 1024  # geth's defaultBodyLimit
_RECV_BYTES: Final = 64 * 1024
_ACCEPT_CAPACITY_ERRNOS: Final = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_JSON_CONTENT_TYPES: Final = frozenset(
    {"application/json", "application/json-rpc", "application/jsonrequest"}  # as geth accepts
)

_log = get_logger("httpserver")


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """A fully received request. Header names are lower-case."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    client: tuple[str, int] | None = None

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]

    @property
    def query(self) -> str:
        return self.target.split("?", 1)[1] if "?" in self.target else ""

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return default


@dataclass(slots=True)
class HttpResponse:
    """A complete response; ``Content-Length`` (and ``Date``) are added by the server."""

    status: int = 200
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, value: Any, status: int = 200) -> HttpResponse:
        body = json.dumps(value, separators=(",", ":")).encode()
        return cls(status, body, [("Content-Type", "application/json")])

    @classmethod
    def text(
        cls, text: str, status: int = 200, content_type: str = "text/plain; charset=utf-8"
    ) -> HttpResponse:
        return cls(status, text.encode(), [("Content-Type", content_type)])


RouteHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]
HealthCheck = Callable[[], Awaitable[tuple[int, Any]]]


# ---------------------------------------------------------------------------------------------
# Standard handlers
# ---------------------------------------------------------------------------------------------


def jsonrpc_handler(dispatcher: Dispatcher) -> RouteHandler:
    """geth-style JSON-RPC over HTTP: POST with a JSON content type; errors travel with HTTP 200."""

    async def handle(request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            # geth answers body-less GETs with an empty 200 so that load-balancer probes work.
            return HttpResponse(200)
        content_type = (request.header("content-type") or "").split(";", 1)[0].strip().lower()
        if content_type not in _JSON_CONTENT_TYPES:
            return HttpResponse.text("invalid content type, only application/json is supported", 415)
        body = await dispatcher.handle_body(request.body)
        if body is None:
            return HttpResponse(200)
        return HttpResponse(200, body, [("Content-Type", "application/json")])

    return handle


def healthz_handler(health: str | HealthCheck) -> RouteHandler:
    """``GET /healthz``: ``200 {"version": health}``, or ``(status, json) = await health()``."""

    async def handle(request: HttpRequest) -> HttpResponse:
        if isinstance(health, str):
            return HttpResponse.json({"version": health})
        status, value = await health()
        return HttpResponse.json(value, status)

    return handle


def metrics_handler(registry: prometheus_client.CollectorRegistry) -> RouteHandler:
    """``GET /metrics`` in the Prometheus text exposition format."""

    async def handle(request: HttpRequest) -> HttpResponse:
        body = prometheus_client.generate_latest(registry)
        return HttpResponse(200, body, [("Content-Type", prometheus_client.CONTENT_TYPE_LATEST)])

    return handle


# ---------------------------------------------------------------------------------------------
# Connection: h11 <-> trio stream
# ---------------------------------------------------------------------------------------------


class _Closing(Exception):
    """Abort the current exchange: answer ``response`` (if possible) and close the connection."""

    def __init__(self, response: HttpResponse | None) -> None:
        super().__init__()
        self.response = response


class _Connection:
    def __init__(self, stream: trio.SocketStream, max_header_bytes: int) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=max_header_bytes)
        try:
            peer = stream.socket.getpeername()
            self.client: tuple[str, int] | None = (str(peer[0]), int(peer[1]))
        except (OSError, IndexError, TypeError):
            self.client = None

    async def send(self, event: h11.Event) -> None:
        data = self.h11.send(event)
        if data:
            await self.stream.send_all(data)

    async def receive(self) -> None:
        """Feed one chunk from the peer into h11 (b"" on EOF or reset)."""
        if self.h11.they_are_waiting_for_100_continue:
            await self.send(h11.InformationalResponse(status_code=100, headers=[]))
        try:
            data = await self.stream.receive_some(_RECV_BYTES)
        except trio.BrokenResourceError:
            data = b""
        self.h11.receive_data(data)

    async def next_event(self) -> h11.Event | type[h11.PAUSED]:
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                await self.receive()
                continue
            return event  # type: ignore[return-value]  # NEED_DATA was handled above

    async def close(self, linger: float, max_drain_bytes: int) -> None:
        """Half-close, then discard what the peer still sends (an upload we refused, say) for at most
        ``linger`` seconds / ``max_drain_bytes`` so it gets to read our answer; then close."""
        try:
            with trio.move_on_after(linger):
                await self.stream.send_eof()
                drained = 0
                while drained <= max_drain_bytes:
                    chunk = await self.stream.receive_some(_RECV_BYTES)
                    if not chunk:
                        break
                    drained += len(chunk)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            pass
        finally:
            await trio.aclose_forcefully(self.stream)


def _log_failure(event: str, exc: BaseException, **context: Any) -> None:
    """Log an unexpected exception; a broken log sink must not take the server down with it."""
    try:
        _log.error(event, exc_info=exc, **context)
    except Exception:
        pass


def _error(status: int, message: str) -> HttpResponse:
    return HttpResponse.text(message + "\n", status)


def _too_large(message: str) -> HttpResponse:
    return HttpResponse.json(
        {"jsonrpc": "2.0", "id": None, "error": {"code": INVALID_REQUEST, "message": message}}, 413
    )


# ---------------------------------------------------------------------------------------------
# Server
# ---------------------------------------------------------------------------------------------


class HttpServer:
    """A routing table served over HTTP/1.1 with keep-alive; see the module docstring."""

    def __init__(
        self,
        routes: Mapping[tuple[str, str], RouteHandler] | None = None,
        *,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout: float = 30.0,
        keepalive_timeout: float = 120.0,
        linger_timeout: float = 5.0,
        max_connections: int = 1024,
        max_header_bytes: int = 64 * 1024,
    ) -> None:
        self.max_body_bytes = max_body_bytes
        self.request_timeout = request_timeout
        self.keepalive_timeout = keepalive_timeout
        self.linger_timeout = linger_timeout
        self.max_header_bytes = max_header_bytes
        self._routes: dict[tuple[str, str], RouteHandler] = {}
        self._limiter = trio.CapacityLimiter(max_connections)
        self._open_connections = 0
        for (method, path), handler in (routes or {}).items():
            self.route(method, path, handler)

    # -- routing ------------------------------------------------------------------------------

    def route(self, method: str, path: str, handler: RouteHandler) -> None:
        key = (method.upper(), path)
        if key in self._routes:
            raise ValueError(f"route {method} {path} registered twice")
        self._routes[key] = handler

    def mount_jsonrpc(self, dispatcher: Dispatcher, path: str = "/") -> None:
        handler = jsonrpc_handler(dispatcher)
        self.route("POST", path, handler)
        self.route("GET", path, handler)

    def mount_healthz(self, health: str | HealthCheck, path: str = "/healthz") -> None:
        self.route("GET", path, healthz_handler(health))

    def mount_metrics(self, registry: prometheus_client.CollectorRegistry, path: str = "/metrics") -> None:
        self.route("GET", path, metrics_handler(registry))

    @property
    def active_connections(self) -> int:
        """Connections currently being served (including ones lingering before close)."""
        return self._open_connections

    # -- serving ------------------------------------------------------------------------------

    async def serve(
        self,
        host: str | None,
        port: int,
        *,
        task_status: TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0 = any free port) until cancelled; ``started((host, port))``."""
        listeners = await trio.open_tcp_listeners(port, host=host)
        try:
            async with trio.open_nursery() as nursery:
                for listener in listeners:
                    nursery.start_soon(self._accept_loop, listener, nursery)
                sockname = listeners[0].socket.getsockname()
                bound = (str(sockname[0]), int(sockname[1]))
                _log.info("http_server_listening", host=bound[0], port=bound[1])
                task_status.started(bound)
        finally:
            for listener in listeners:
                await trio.aclose_forcefully(listener)

    async def _accept_loop(self, listener: trio.SocketListener, nursery: trio.Nursery) -> None:
        while True:
            token = object()
            await self._limiter.acquire_on_behalf_of(token)
            try:
                stream = await listener.accept()
            except OSError as exc:
                self._limiter.release_on_behalf_of(token)
                if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                    raise
                _log.warning("http_accept_failed", error=str(exc))
                await trio.sleep(0.1)
                continue
            except BaseException:
                self._limiter.release_on_behalf_of(token)
                raise
            nursery.start_soon(self._connection_task, stream, token)

    async def _connection_task(self, stream: trio.SocketStream, token: object) -> None:
        self._open_connections += 1
        try:
            await self._serve_connection(stream)
        finally:
            self._open_connections -= 1
            self._limiter.release_on_behalf_of(token)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        conn = _Connection(stream, self.max_header_bytes)
        try:
            while await self._exchange(conn):
                if conn.h11.our_state is h11.MUST_CLOSE:
                    break
                try:
                    conn.h11.start_next_cycle()
                except h11.LocalProtocolError:
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the peer went away mid-exchange
        except Exception as exc:
            _log_failure("http_connection_failed", exc, client=conn.client)
        finally:
            await conn.close(self.linger_timeout, max(2 * self.max_body_bytes, 1024 * 1024))

    async def _exchange(self, conn: _Connection) -> bool:
        """Serve one request/response cycle; False when the connection must be closed."""
        try:
            request = await self._receive_request(conn)
            if request is None:
                return False
        except _Closing as closing:
            if closing.response is not None and conn.h11.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                closing.response.headers.append(("Connection", "close"))
                await self._send_response(conn, closing.response, head=False)
            return False
        response, head = await self._respond(request)
        return await self._send_response(conn, response, head=head)

    async def _receive_request(self, conn: _Connection) -> HttpRequest | None:
        """The next complete request, or None if the peer closed or idled out between requests."""
        try:
            event = conn.h11.next_event()
            if event is h11.NEED_DATA:
                with trio.move_on_after(self.keepalive_timeout) as idle:
                    await conn.receive()
                if idle.cancelled_caught:
                    return None
            with trio.move_on_after(self.request_timeout) as scope:
                if event is h11.NEED_DATA:
                    event = await conn.next_event()
                if not isinstance(event, h11.Request):
                    return None  # ConnectionClosed (PAUSED cannot happen in state IDLE)
                head = event
                self._check_head(head)
                body = bytearray()
                while True:
                    event = await conn.next_event()
                    if isinstance(event, h11.Data):
                        body += event.data
                        if len(body) > self.max_body_bytes:
                            raise _Closing(_too_large(f"content length too large (>{self.max_body_bytes})"))
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    else:
                        return None
            if scope.cancelled_caught:
                raise _Closing(_error(408, "request timeout"))
        except h11.RemoteProtocolError as exc:
            raise _Closing(_error(exc.error_status_hint, f"bad request: {exc}"))
        return HttpRequest(
            method=head.method.decode("ascii", "replace").upper(),
            target=head.target.decode("ascii", "replace"),
            headers=tuple(
                (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in head.headers
            ),
            body=bytes(body),
            client=conn.client,
        )

    def _check_head(self, head: h11.Request) -> None:
        # h11 bounds headers that trickle in; this also bounds headers that arrive in one read.
        size = len(head.target) + sum(len(name) + len(value) + 4 for name, value in head.headers)
        if size > self.max_header_bytes:
            raise _Closing(_error(431, "request header fields too large"))
        for name, value in head.headers:
            if name == b"content-length":
                length = int(value)  # h11 has validated it
                if length > self.max_body_bytes:
                    raise _Closing(_too_large(f"content length too large ({length}>{self.max_body_bytes})"))

    async def _respond(self, request: HttpRequest) -> tuple[HttpResponse, bool]:
        """Route and run the handler; returns (response, is_head)."""
        head = request.method == "HEAD"
        path = request.path
        handler = self._routes.get((request.method, path))
        if handler is None and head:
            handler = self._routes.get(("GET", path))
        if handler is None:
            allowed = sorted({m for m, p in self._routes if p == path})
            if not allowed:
                return _error(404, "not found"), head
            if "GET" in allowed:
                allowed.append("HEAD")
            response = _error(405, "method not allowed")
            response.headers.append(("Allow", ", ".join(sorted(allowed))))
            return response, head
        try:
            return await handler(request), head
        except Exception as exc:
            _log_failure("http_handler_failed", exc, method=request.method, path=path)
            return _error(500, "internal server error"), head

    async def _send_response(self, conn: _Connection, response: HttpResponse, *, head: bool) -> bool:
        headers = [(k, v) for k, v in response.headers if k.lower() not in ("content-length", "date")]
        headers.append(("Content-Length", str(len(response.body))))
        headers.append(("Date", formatdate(usegmt=True)))
        with trio.move_on_after(self.request_timeout) as scope:
            await conn.send(h11.Response(status_code=response.status, headers=headers))
            if response.body and not head:
                await conn.send(h11.Data(data=response.body))
            await conn.send(h11.EndOfMessage())
        return not scope.cancelled_caught
