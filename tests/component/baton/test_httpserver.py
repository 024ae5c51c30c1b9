"""Component tests of baton.httpserver and baton.rpcclient over real sockets on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import prometheus_client
import pytest
import trio

from baton.httpserver import HttpRequest, HttpResponse, HttpServer
from baton.jsonrpc import Dispatcher, Params, RpcError
from baton.rpcclient import RpcClient, RpcClientError, RpcTransportError

VERSION = "v9.9.9-test"
JSON = {"Content-Type": "application/json"}


class NotLeaderError(Exception):
    pass


async def _add(params: Params) -> Any:
    assert isinstance(params, list)
    return sum(params)


async def _echo(params: Params) -> Any:
    return params


async def _not_leader(params: Params) -> Any:
    raise NotLeaderError("node is not the leader")


async def _custom_error(params: Params) -> Any:
    raise RpcError(-32099, "custom", {"why": "test"})


async def _sleep(params: Params) -> Any:
    assert isinstance(params, list)
    await trio.sleep(params[0])
    return "slept"


def make_server(**kwargs: Any) -> tuple[HttpServer, prometheus_client.CollectorRegistry]:
    dispatcher = Dispatcher(version=VERSION, plain_errors=(NotLeaderError,))
    for name, handler in [
        ("test_add", _add),
        ("test_echo", _echo),
        ("test_notLeader", _not_leader),
        ("test_custom", _custom_error),
        ("test_sleep", _sleep),
    ]:
        dispatcher.register(name, handler)
    registry = prometheus_client.CollectorRegistry()
    counter = prometheus_client.Counter("baton_test_requests", "test counter", registry=registry)
    counter.inc(3)
    server = HttpServer(**kwargs)
    server.mount_jsonrpc(dispatcher)
    server.mount_healthz(VERSION)
    server.mount_metrics(registry)

    async def boom(request: HttpRequest) -> HttpResponse:
        raise RuntimeError("handler bug")

    async def garbage(request: HttpRequest) -> HttpResponse:
        return HttpResponse(200, b"not json{", [("Content-Type", "application/json")])

    async def health(request: HttpRequest) -> HttpResponse:
        return HttpResponse.json({"ok": False}, 503)

    server.route("GET", "/boom", boom)
    server.route("POST", "/garbage", garbage)
    server.route("GET", "/custom-health", health)
    return server, registry


@asynccontextmanager
async def running(server: HttpServer) -> AsyncIterator[tuple[str, int]]:
    async with trio.open_nursery() as nursery:
        addr: tuple[str, int] = await nursery.start(server.serve, "127.0.0.1", 0)
        try:
            yield addr
        finally:
            nursery.cancel_scope.cancel()


def url(addr: tuple[str, int], path: str = "/") -> str:
    return f"http://{addr[0]}:{addr[1]}{path}"


_leftover: dict[int, bytearray] = {}


async def read_response(stream: trio.SocketStream) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length from a raw stream (keeps pipelined leftovers)."""
    buf = _leftover.setdefault(id(stream), bytearray())
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError(f"EOF before end of headers: {bytes(buf)!r}")
        buf += chunk
    end = buf.index(b"\r\n\r\n")
    lines = buf[:end].decode("latin-1").split("\r\n")
    del buf[: end + 4]
    status = int(lines[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(buf) < length:
        chunk = await stream.receive_some(65536)
        if not chunk:
            raise EOFError("EOF in body")
        buf += chunk
    body = bytes(buf[:length])
    del buf[:length]
    return status, headers, body


async def read_to_eof(stream: trio.SocketStream) -> bytes:
    data = bytearray()
    while chunk := await stream.receive_some(65536):
        data += chunk
    return bytes(data)


def rpc_request(body: bytes | str, host: str = "x") -> bytes:
    raw = body.encode() if isinstance(body, str) else body
    return (
        f"POST / HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(raw)}\r\n\r\n"
    ).encode() + raw


# ---------------------------------------------------------------------------------------------
# JSON-RPC over HTTP
# ---------------------------------------------------------------------------------------------


async def test_jsonrpc_single_batch_notification_and_errors() -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with running(server) as addr, httpx.AsyncClient() as client:
            r = await client.post(
                url(addr),
                content=b'{"jsonrpc":"2.0","method":"test_add","params":[1,2],"id":1}',
                headers=JSON,
            )
            assert (r.status_code, r.json()) == (200, {"jsonrpc": "2.0", "id": 1, "result": 3})
            assert r.headers["content-type"] == "application/json"

            batch = [
                {"jsonrpc": "2.0", "method": "test_add", "params": [5], "id": "a"},
                {"jsonrpc": "2.0", "method": "test_echo", "params": [1]},
                {"jsonrpc": "2.0", "method": "test_notLeader", "id": "b"},
                {"jsonrpc": "2.0", "method": "test_custom", "id": "c"},
                {"jsonrpc": "2.0", "method": "nope_nope", "id": "d"},
                {"jsonrpc": "2.0", "method": "health_status", "id": "e"},
            ]
            r = await client.post(url(addr), content=json.dumps(batch).encode(), headers=JSON)
            assert r.status_code == 200
            assert r.json() == [
                {"jsonrpc": "2.0", "id": "a", "result": 5},
                {
                    "jsonrpc": "2.0",
                    "id": "b",
                    "error": {"code": -32000, "message": "node is not the leader"},
                },
                {
                    "jsonrpc": "2.0",
                    "id": "c",
                    "error": {"code": -32099, "message": "custom", "data": {"why": "test"}},
                },
                {
                    "jsonrpc": "2.0",
                    "id": "d",
                    "error": {
                        "code": -32601,
                        "message": "the method nope_nope does not exist/is not available",
                    },
                },
                {"jsonrpc": "2.0", "id": "e", "result": VERSION},
            ]

            r = await client.post(
                url(addr), content=b'{"jsonrpc":"2.0","method":"test_echo"}', headers=JSON
            )
            assert (r.status_code, r.content) == (200, b"")

            r = await client.post(url(addr), content=b"{not json", headers=JSON)
            assert (r.status_code, r.json()["error"]["code"], r.json()["id"]) == (200, -32700, None)

            r = await client.post(url(addr), content=b"[]", headers=JSON)
            assert r.json() == {
                "jsonrpc": "2.0",
                "id": None,
                "error": {"code": -32600, "message": "Invalid Request"},
            }


async def test_content_type_and_methods_on_rpc_path() -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with running(server) as addr, httpx.AsyncClient() as client:
            body = b'{"jsonrpc":"2.0","method":"test_add","params":[1],"id":1}'
            r = await client.post(url(addr), content=body, headers={"Content-Type": "text/plain"})
            assert r.status_code == 415
            r = await client.post(url(addr), content=body)
            assert r.status_code == 415
            r = await client.post(
                url(addr), content=body, headers={"Content-Type": "application/json; charset=utf-8"}
            )
            assert r.json()["result"] == 1
            r = await client.get(url(addr))
            assert (r.status_code, r.content) == (200, b"")
            r = await client.put(url(addr), content=body, headers=JSON)
            assert r.status_code == 405
            assert r.headers["allow"] == "GET, HEAD, POST"
            r = await client.get(url(addr, "/nowhere"))
            assert r.status_code == 404


# ---------------------------------------------------------------------------------------------
# Health, metrics, HEAD, handler errors
# ---------------------------------------------------------------------------------------------


async def test_healthz_metrics_and_head() -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with running(server) as addr, httpx.AsyncClient() as client:
            r = await client.get(url(addr, "/healthz"))
            assert (r.status_code, r.json()) == (200, {"version": VERSION})
            r = await client.get(url(addr, "/healthz?verbose=1"))
            assert r.json() == {"version": VERSION}
            h = await client.head(url(addr, "/healthz"))
            assert (h.status_code, h.content) == (200, b"")
            assert h.headers["content-length"] == str(
                len(json.dumps({"version": VERSION}, separators=(",", ":")))
            )

            r = await client.get(url(addr, "/metrics"))
            assert r.status_code == 200
            assert r.headers["content-type"] == prometheus_client.CONTENT_TYPE_LATEST
            assert "baton_test_requests_total 3.0" in r.text
            h = await client.head(url(addr, "/metrics"))
            assert (h.status_code, h.content) == (200, b"")

            r = await client.get(url(addr, "/custom-health"))
            assert (r.status_code, r.json()) == (503, {"ok": False})

            # the same keep-alive connection survives a handler crash
            r = await client.get(url(addr, "/boom"))
            assert r.status_code == 500
            assert "handler bug" not in r.text
            r = await client.get(url(addr, "/healthz"))
            assert r.status_code == 200
            assert server.active_connections == 1


async def test_custom_health_function() -> None:
    calls = 0

    async def health() -> tuple[int, Any]:
        nonlocal calls
        calls += 1
        return 503, {"version": VERSION, "healthy": False}

    server = HttpServer()
    server.mount_healthz(health)
    with trio.fail_after(10):
        async with running(server) as addr, httpx.AsyncClient() as client:
            r = await client.get(url(addr, "/healthz"))
            assert (r.status_code, r.json(), calls) == (503, {"version": VERSION, "healthy": False}, 1)


# ---------------------------------------------------------------------------------------------
# Limits and malformed input
# ---------------------------------------------------------------------------------------------


async def test_oversized_body_default_limit_413() -> None:
    server, _ = make_server()
    body = b'{"jsonrpc":"2.0","method":"test_echo","params":["' + b"a" * (6 * 1024 * 1024) + b'"],"id":1}'
    with trio.fail_after(20):
        async with running(server) as addr, httpx.AsyncClient() as client:
            r = await client.post(url(addr), content=body, headers=JSON)
            assert r.status_code == 413
            assert r.headers["connection"] == "close"
            assert r.json()["error"]["code"] == -32600
            assert "content length too large" in r.json()["error"]["message"]
            # just under the 5 MiB default is accepted
            ok = (
                b'{"jsonrpc":"2.0","method":"test_echo","params":["'
                + b"a" * (5 * 1024 * 1024 - 100)
                + b'"],"id":1}'
            )
            r = await client.post(url(addr), content=ok, headers=JSON)
            assert r.status_code == 200
            assert len(r.json()["result"][0]) == 5 * 1024 * 1024 - 100


async def test_configurable_limit_and_declared_length_rejected_before_body() -> None:
    server, _ = make_server(max_body_bytes=1000)
    with trio.fail_after(10):
        async with running(server) as addr:
            async with httpx.AsyncClient() as client:
                small = json.dumps(
                    {"jsonrpc": "2.0", "method": "test_echo", "params": ["x" * 900], "id": 1}
                )
                assert len(small) <= 1000
                r = await client.post(url(addr), content=small.encode(), headers=JSON)
                assert r.status_code == 200
                big = json.dumps({"jsonrpc": "2.0", "method": "test_echo", "params": ["x" * 1000], "id": 1})
                r = await client.post(url(addr), content=big.encode(), headers=JSON)
                assert r.status_code == 413

                async def chunked() -> AsyncIterator[bytes]:
                    for _ in range(10):
                        yield b" " * 200

                r = await client.post(url(addr), content=chunked(), headers=JSON)
                assert r.status_code == 413
                assert "(>1000)" in r.json()["error"]["message"]

            # a declared length over the limit is answered at once, without waiting for the body
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 6000000\r\nExpect: 100-continue\r\n\r\n"
                )
                status, _, body = await read_response(stream)
                assert status == 413
                assert json.loads(body)["error"]["message"] == "content length too large (6000000>1000)"
                assert await read_to_eof(stream) == b""


@pytest.mark.parametrize(
    "raw",
    [
        b"GARBAGE\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",  # HTTP/1.1 without Host
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n",
    ],
    ids=["garbage", "no-host", "bad-content-length", "bad-header"],
)
async def test_malformed_request_gets_400_and_close(raw: bytes) -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with running(server) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(raw)
                status, headers, _ = await read_response(stream)
                assert status == 400
                assert headers["connection"] == "close"
                assert await read_to_eof(stream) == b""
            async with httpx.AsyncClient() as client:  # the server is still fine
                assert (await client.get(url(addr, "/healthz"))).status_code == 200


async def test_oversized_headers_rejected() -> None:
    server, _ = make_server(max_header_bytes=4096)
    with trio.fail_after(10):
        async with running(server) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(
                    b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 8000 + b"\r\n\r\n"
                )
                status, _, _ = await read_response(stream)
                assert status == 431


# ---------------------------------------------------------------------------------------------
# Connections: keep-alive, pipelining, concurrency, slow and vanishing clients, shutdown
# ---------------------------------------------------------------------------------------------


async def test_keepalive_reuses_one_connection_and_pipelining() -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with running(server) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                for i in range(3):
                    await stream.send_all(
                        rpc_request(f'{{"jsonrpc":"2.0","method":"test_add","params":[{i}],"id":{i}}}')
                    )
                    status, _, body = await read_response(stream)
                    assert (status, json.loads(body)["result"]) == (200, i)
                # two pipelined requests in one write
                await stream.send_all(
                    rpc_request('{"jsonrpc":"2.0","method":"test_add","params":[7],"id":7}')
                    + rpc_request('{"jsonrpc":"2.0","method":"test_add","params":[8],"id":8}')
                )
                assert json.loads((await read_response(stream))[2])["result"] == 7
                assert json.loads((await read_response(stream))[2])["result"] == 8
                assert server.active_connections == 1
                # HTTP/1.0 without keep-alive: answered, then closed
                await stream.send_all(b"GET /healthz HTTP/1.0\r\n\r\n")
                status, _, body = await read_response(stream)
                assert (status, json.loads(body)) == (200, {"version": VERSION})
                assert await read_to_eof(stream) == b""


async def test_100_concurrent_requests() -> None:
    server, _ = make_server()
    results: dict[int, Any] = {}
    with trio.fail_after(30):
        async with (
            running(server) as addr,
            httpx.AsyncClient(limits=httpx.Limits(max_connections=100)) as client,
        ):

            async def one(i: int) -> None:
                body = json.dumps({"jsonrpc": "2.0", "method": "test_sleep", "params": [0.2], "id": i})
                r = await client.post(url(addr), content=body.encode(), headers=JSON)
                results[i] = r.json()

            start = trio.current_time()
            async with trio.open_nursery() as nursery:
                for i in range(100):
                    nursery.start_soon(one, i)
            elapsed = trio.current_time() - start
    assert results == {i: {"jsonrpc": "2.0", "id": i, "result": "slept"} for i in range(100)}
    assert elapsed < 5  # concurrent: 100 x 0.2 s in sequence would take 20 s


async def test_stalled_client_does_not_block_others_and_times_out() -> None:
    server, _ = make_server(request_timeout=1.0)
    with trio.fail_after(10):
        async with running(server) as addr:
            stalled = await trio.open_tcp_stream(*addr)
            async with stalled:
                await stalled.send_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Le"
                )
                async with httpx.AsyncClient() as client:
                    start = trio.current_time()
                    r = await client.get(url(addr, "/healthz"))
                    assert r.status_code == 200
                    assert trio.current_time() - start < 0.9  # answered before the stalled one times out
                status, headers, _ = await read_response(stalled)
                assert (status, headers["connection"]) == (408, "close")
                assert await read_to_eof(stalled) == b""

            # stalled in the body
            stalled = await trio.open_tcp_stream(*addr)
            async with stalled:
                await stalled.send_all(
                    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 50\r\n\r\n{"
                )
                status, _, _ = await read_response(stalled)
                assert status == 408


async def test_idle_keepalive_connection_is_closed() -> None:
    server, _ = make_server(keepalive_timeout=0.3)
    with trio.fail_after(10):
        async with running(server) as addr:
            stream = await trio.open_tcp_stream(*addr)
            async with stream:
                await stream.send_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                assert (await read_response(stream))[0] == 200
                assert server.active_connections == 1
                start = trio.current_time()
                assert await read_to_eof(stream) == b""
                assert 0.2 < trio.current_time() - start < 3
            await trio.sleep(0.05)
            assert server.active_connections == 0


async def test_vanishing_clients_do_not_crash_the_server() -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with running(server) as addr:
            for raw in [
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 100\r\n\r\n{",
                b"GET /heal",
                b"",
                rpc_request('{"jsonrpc":"2.0","method":"test_sleep","params":[0.2],"id":1}'),
            ]:
                stream = await trio.open_tcp_stream(*addr)
                await stream.send_all(raw)
                await trio.aclose_forcefully(stream)
            await trio.sleep(0.4)  # let the sleeping handler finish and find its peer gone
            async with httpx.AsyncClient() as client:
                assert (await client.get(url(addr, "/healthz"))).status_code == 200
            assert server.active_connections <= 1


async def test_max_connections_applies_backpressure() -> None:
    server, _ = make_server(max_connections=2)
    with trio.fail_after(10):
        async with running(server) as addr:
            idle = [await trio.open_tcp_stream(*addr) for _ in range(2)]
            await trio.sleep(0.1)
            assert server.active_connections == 2
            async with httpx.AsyncClient(timeout=0.3) as client:
                with pytest.raises(httpx.TimeoutException):
                    await client.get(url(addr, "/healthz"))
            await idle[0].aclose()
            async with httpx.AsyncClient(timeout=2) as client:
                assert (await client.get(url(addr, "/healthz"))).status_code == 200
            await idle[1].aclose()


async def test_shutdown_on_cancel_closes_listener_and_connections() -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            addr: tuple[str, int] = await nursery.start(server.serve, "127.0.0.1", 0)
            idle = await trio.open_tcp_stream(*addr)
            busy = await trio.open_tcp_stream(*addr)
            await busy.send_all(rpc_request('{"jsonrpc":"2.0","method":"test_sleep","params":[60],"id":1}'))
            await trio.sleep(0.1)
            assert server.active_connections == 2
            nursery.cancel_scope.cancel()
        # the nursery exited promptly: serve() returned; sockets are closed
        assert server.active_connections == 0
        assert await read_to_eof(idle) == b""
        assert await read_to_eof(busy) == b""
        await idle.aclose()
        await busy.aclose()
        with pytest.raises(OSError):
            await trio.open_tcp_stream(*addr)


# ---------------------------------------------------------------------------------------------
# RpcClient against our own server
# ---------------------------------------------------------------------------------------------


async def test_rpc_client_call_errors_and_batch() -> None:
    server, _ = make_server()
    with trio.fail_after(10):
        async with running(server) as addr, RpcClient(url(addr), timeout=5) as rpc:
            assert await rpc.call("test_add", 1, 2, 3) == 6
            assert await rpc.call("test_echo") == []
            assert await rpc.call_with("test_echo", {"a": 1}) == {"a": 1}
            assert await rpc.call("health_status") == VERSION
            assert await rpc.call("rpc_modules") == {"health": "1.0", "rpc": "1.0", "test": "1.0"}
            with pytest.raises(RpcClientError) as info:
                await rpc.call("test_notLeader")
            assert (info.value.code, info.value.message) == (-32000, "node is not the leader")
            with pytest.raises(RpcClientError) as info:
                await rpc.call("test_custom")
            assert (info.value.code, info.value.data) == (-32099, {"why": "test"})
            with pytest.raises(RpcClientError) as info:
                await rpc.call("admin_conductorEnabled")
            assert info.value.code == -32601
            await rpc.notify("test_echo", 1)

            results = await rpc.batch(
                [("test_add", [1, 1]), ("test_notLeader", []), ("test_echo", {"k": "v"})]
            )
            assert results[0] == 2
            assert results[1] == RpcClientError(-32000, "node is not the leader")
            assert results[2] == {"k": "v"}
            assert await rpc.batch([]) == []
            with pytest.raises(RpcClientError, match="batch too large"):
                await rpc.batch([("test_add", [i]) for i in range(1001)])


async def test_rpc_client_transport_errors() -> None:
    server, _ = make_server()
    with trio.fail_after(15):
        async with running(server) as addr:
            async with RpcClient(url(addr), timeout=0.3) as rpc:
                with pytest.raises(RpcTransportError, match="timed out"):
                    await rpc.call("test_sleep", 5)
            async with RpcClient(url(addr, "/boom"), timeout=5) as rpc:
                with pytest.raises(RpcTransportError) as info:
                    await rpc.call("test_add", 1)
                assert info.value.status == 405
            async with RpcClient(url(addr, "/garbage"), timeout=5) as rpc:
                with pytest.raises(RpcTransportError, match="invalid JSON"):
                    await rpc.call("test_add", 1)
            async with RpcClient(url(addr), timeout=5, max_response_bytes=100) as rpc:
                with pytest.raises(RpcTransportError, match="larger than 100"):
                    await rpc.call("test_echo", "x" * 200)
            async with RpcClient(url(addr), timeout=5, headers={"Content-Type": "text/plain"}) as rpc:
                with pytest.raises(RpcTransportError) as info:
                    await rpc.call("test_add", 1)
                assert info.value.status == 415
        # the server is gone: connection refused
        async with RpcClient(url(addr), timeout=2) as rpc:
            with pytest.raises(RpcTransportError, match="ConnectError"):
                await rpc.call("test_add", 1)
