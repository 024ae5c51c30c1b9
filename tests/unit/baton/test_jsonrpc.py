"""Unit tests of the sans-IO JSON-RPC codec/dispatcher (baton.jsonrpc) and param validators (baton.params)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from baton import jsonrpc as rpc
from baton.jsonrpc import (
    Dispatcher,
    InvalidParams,
    InvalidRequest,
    Params,
    Request,
    RpcError,
    ServerError,
    decode_body,
    encode_error,
    encode_result,
    iter_error_codes,
    parse_message,
    rpc_method,
)
from baton.params import (
    check_arity,
    param_address,
    param_bool,
    param_hex_bytes,
    param_int,
    param_optional,
    param_quantity,
    param_str,
)

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


async def _subtract(params: Params) -> Any:
    if isinstance(params, dict):
        return params["minuend"] - params["subtrahend"]
    return params[0] - params[1]


async def _sum(params: Params) -> Any:
    assert isinstance(params, list)
    return sum(params)


async def _get_data(params: Params) -> Any:
    return ["hello", 5]


notified: list[str] = []


async def _notify(params: Params) -> Any:
    notified.append(repr(params))
    return None


def spec_dispatcher() -> Dispatcher:
    """The methods used by the examples of jsonrpc.org §7."""
    d = Dispatcher()
    d.register("subtract", _subtract)
    d.register("sum", _sum)
    d.register("get_data", _get_data)
    d.register("update", _notify)
    d.register("notify_hello", _notify)
    d.register("notify_sum", _notify)
    return d


async def call_raw(d: Dispatcher, body: str | bytes) -> Any:
    """Send a raw body; return the decoded answer (None when there is no body)."""
    with trio.fail_after(5):
        out = await d.handle_body(body.encode() if isinstance(body, str) else body)
    return None if out is None else json.loads(out)


def canon(value: Any) -> Any:
    """Drop key order so answers can be compared to the spec's text."""
    return json.loads(json.dumps(value, sort_keys=True))


def not_found(req_id: Any, method: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": req_id,
        "error": {"code": -32601, "message": f"the method {method} does not exist/is not available"},
    }


PARSE_ERR = {"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None}
INVALID_REQ = {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid Request"}, "id": None}


# ---------------------------------------------------------------------------------------------
# jsonrpc.org §7 examples, with their exact expected answers
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',
            {"jsonrpc": "2.0", "result": 19, "id": 1},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',
            {"jsonrpc": "2.0", "result": -19, "id": 2},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',
            {"jsonrpc": "2.0", "result": 19, "id": 3},
        ),
        (
            '{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',
            {"jsonrpc": "2.0", "result": 19, "id": 4},
        ),
        ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}', None),
        ('{"jsonrpc": "2.0", "method": "foobar"}', None),
        ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}', not_found("1", "foobar")),
        ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]', PARSE_ERR),
        ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}', INVALID_REQ),
        (
            '[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n'
            '  {"jsonrpc": "2.0", "method"\n]',
            PARSE_ERR,
        ),
        ("[]", INVALID_REQ),
        ("[1]", [INVALID_REQ]),
        ("[1,2,3]", [INVALID_REQ, INVALID_REQ, INVALID_REQ]),
        (
            """[
                {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
                {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
                {"foo": "boo"},
                {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
                {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
            ]""",
            [
                {"jsonrpc": "2.0", "result": 7, "id": "1"},
                {"jsonrpc": "2.0", "result": 19, "id": "2"},
                INVALID_REQ,
                not_found("5", "foo.get"),
                {"jsonrpc": "2.0", "result": ["hello", 5], "id": "9"},
            ],
        ),
        (
            """[
                {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
                {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
            ]""",
            None,
        ),
    ],
    ids=[
        "positional-1",
        "positional-2",
        "named-3",
        "named-4",
        "notification-update",
        "notification-unknown-method",
        "method-not-found",
        "invalid-json",
        "invalid-request-object",
        "batch-invalid-json",
        "empty-array",
        "invalid-batch-one",
        "invalid-batch-three",
        "mixed-batch",
        "all-notifications-batch",
    ],
)
async def test_jsonrpc_org_examples(body: str, expected: Any) -> None:
    assert canon(await call_raw(spec_dispatcher(), body)) == canon(expected)


async def test_notifications_are_executed_but_not_answered() -> None:
    notified.clear()
    d = spec_dispatcher()
    assert await d.handle_body(b'{"jsonrpc":"2.0","method":"update","params":[1]}') is None
    assert notified == ["[1]"]


# ---------------------------------------------------------------------------------------------
# Request validation
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "answer_id"),
    [
        ({"jsonrpc": "1.0", "method": "sum", "id": 7}, 7),
        ({"method": "sum", "id": 7}, 7),
        ({"jsonrpc": "2.0", "method": "", "id": "x"}, "x"),
        ({"jsonrpc": "2.0", "method": "sum", "params": "bar", "id": 8}, 8),
        ({"jsonrpc": "2.0", "method": "sum", "params": 3, "id": 8}, 8),
        ({"jsonrpc": "2.0", "method": "sum", "id": True}, None),
        ({"jsonrpc": "2.0", "method": "sum", "id": {"a": 1}}, None),
        ({"jsonrpc": "2.0", "method": "sum", "id": [1]}, None),
        ("just a string", None),
        (None, None),
    ],
)
async def test_invalid_requests_get_32600(obj: Any, answer_id: Any) -> None:
    parsed = parse_message(obj)
    assert isinstance(parsed, InvalidRequest)
    assert parsed.request_id == answer_id
    answer = await call_raw(spec_dispatcher(), json.dumps(obj))
    assert answer == {
        "jsonrpc": "2.0",
        "id": answer_id,
        "error": {"code": -32600, "message": "Invalid Request"},
    }


def test_parse_message_accepts_null_params_and_null_id() -> None:
    assert parse_message({"jsonrpc": "2.0", "method": "sum", "params": None, "id": None}) == Request(
        "sum", [], None, False
    )
    assert parse_message({"jsonrpc": "2.0", "method": "sum"}) == Request("sum", [], None, True)
    assert parse_message({"jsonrpc": "2.0", "method": "sum", "id": 1.5}) == Request("sum", [], 1.5, False)


@pytest.mark.parametrize(
    "body",
    [b"", b"   ", b"NaN", b'{"x": Infinity}', b"[" * 100_000, b"\xff\xfe\x00", b"1" * 5000, b"{'a':1}"],
    ids=["empty", "blank", "nan", "infinity", "deep-nesting", "bad-utf", "huge-int", "single-quotes"],
)
async def test_unparseable_bodies_give_32700(body: bytes) -> None:
    assert await call_raw(spec_dispatcher(), body) == PARSE_ERR


def test_decode_body_raises_parse_error() -> None:
    with pytest.raises(rpc.ParseError):
        decode_body(b"{")
    assert decode_body(b'{"a": [1, 2.5, null]}') == {"a": [1, 2.5, None]}


async def test_null_id_is_a_call_not_a_notification() -> None:
    answer = await call_raw(spec_dispatcher(), '{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":null}')
    assert answer == {"jsonrpc": "2.0", "id": None, "result": 3}


# ---------------------------------------------------------------------------------------------
# Error mapping
# ---------------------------------------------------------------------------------------------


class NotLeaderError(Exception):
    pass


async def _raise(params: Params) -> Any:
    assert isinstance(params, list)
    kind = params[0]
    if kind == "plain":
        raise NotLeaderError("node is not the leader")
    if kind == "server":
        raise RpcError.server("configuration changed since 3 (latest is 4)")
    if kind == "custom":
        raise RpcError(-32099, "custom failure", {"detail": [1, 2]})
    if kind == "params":
        raise InvalidParams("missing value for required argument 0")
    if kind == "group":
        raise ExceptionGroup("wrapped", [ServerError("leadership transfer in progress")])
    if kind == "bug":
        raise KeyError("secret internal detail")
    if kind == "unjsonable":
        return {"x": object()}
    if kind == "nan":
        return float("nan")
    return "ok"


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("plain", {"code": -32000, "message": "node is not the leader"}),
        ("server", {"code": -32000, "message": "configuration changed since 3 (latest is 4)"}),
        ("custom", {"code": -32099, "message": "custom failure", "data": {"detail": [1, 2]}}),
        ("params", {"code": -32602, "message": "missing value for required argument 0"}),
        ("group", {"code": -32000, "message": "leadership transfer in progress"}),
        ("bug", {"code": -32603, "message": "internal error"}),
        ("unjsonable", {"code": -32603, "message": "internal error"}),
        ("nan", {"code": -32603, "message": "internal error"}),
    ],
)
async def test_exceptions_map_to_error_codes(kind: str, error: dict[str, Any]) -> None:
    d = Dispatcher(plain_errors=(NotLeaderError,))
    d.register("test_raise", _raise)
    body = json.dumps({"jsonrpc": "2.0", "method": "test_raise", "params": [kind], "id": 5})
    answer = await call_raw(d, body)
    assert answer == {"jsonrpc": "2.0", "id": 5, "error": error}
    assert "secret" not in json.dumps(answer)


async def test_plain_errors_are_internal_unless_designated() -> None:
    d = Dispatcher()
    d.register("test_raise", _raise)
    answer = await call_raw(d, '{"jsonrpc":"2.0","method":"test_raise","params":["plain"],"id":1}')
    assert answer["error"] == {"code": -32603, "message": "internal error"}


async def test_call_timeout_gives_32002() -> None:
    async def slow(params: Params) -> Any:
        await trio.sleep_forever()

    d = Dispatcher(timeout=0.05)
    d.register("test_slow", slow)
    d.register("test_fast", _sum)
    body = json.dumps(
        [
            {"jsonrpc": "2.0", "method": "test_slow", "id": 1},
            {"jsonrpc": "2.0", "method": "test_fast", "params": [2, 3], "id": 2},
        ]
    )
    answer = await call_raw(d, body)
    assert answer == [
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32002, "message": "request timed out"}},
        {"jsonrpc": "2.0", "id": 2, "result": 5},
    ]


async def test_outer_cancellation_is_not_swallowed() -> None:
    async def slow(params: Params) -> Any:
        await trio.sleep_forever()

    d = Dispatcher(timeout=None)
    d.register("test_slow", slow)
    with trio.move_on_after(0.05) as scope:
        await d.handle_body(b'{"jsonrpc":"2.0","method":"test_slow","id":1}')
    assert scope.cancelled_caught


# ---------------------------------------------------------------------------------------------
# Batches
# ---------------------------------------------------------------------------------------------


async def test_batch_answers_keep_request_order_and_run_concurrently() -> None:
    async def delayed(params: Params) -> Any:
        assert isinstance(params, list)
        await trio.sleep(params[0])
        return params[0]

    d = Dispatcher()
    d.register("test_delayed", delayed)
    delays = [0.4, 0.3, 0.2, 0.1]
    batch = [
        {"jsonrpc": "2.0", "method": "test_delayed", "params": [x], "id": i} for i, x in enumerate(delays)
    ]
    start = trio.current_time()
    answer = await call_raw(d, json.dumps(batch))
    assert [a["id"] for a in answer] == [0, 1, 2, 3]
    assert [a["result"] for a in answer] == delays
    assert trio.current_time() - start < 0.8  # concurrent, not 1.0 s in sequence


async def test_batch_limit_1000() -> None:
    d = spec_dispatcher()
    ok = [{"jsonrpc": "2.0", "method": "sum", "params": [i], "id": i} for i in range(1000)]
    answer = await call_raw(d, json.dumps(ok))
    assert [a["result"] for a in answer] == list(range(1000))
    too_many = [
        {"jsonrpc": "2.0", "method": "notify_hello"},
        *ok,
        {"jsonrpc": "2.0", "method": "sum", "id": 9},
    ]
    answer = await call_raw(d, json.dumps(too_many))
    assert answer == [{"jsonrpc": "2.0", "id": 0, "error": {"code": -32600, "message": "batch too large"}}]


async def test_batch_response_size_limit_gives_32003() -> None:
    async def big(params: Params) -> Any:
        return "x" * 100

    d = Dispatcher(max_batch_response_bytes=250)
    d.register("test_big", big)
    batch = [{"jsonrpc": "2.0", "method": "test_big", "id": i} for i in range(5)]
    answer = await call_raw(d, json.dumps(batch))
    # like geth: the answer that crosses the limit is kept, every later one becomes -32003
    assert [a.get("result") is not None for a in answer] == [True, True, False, False, False]
    assert answer[4] == {
        "jsonrpc": "2.0",
        "id": 4,
        "error": {"code": -32003, "message": "response too large"},
    }


# ---------------------------------------------------------------------------------------------
# Registration, built-ins, fallback, hooks
# ---------------------------------------------------------------------------------------------


class ConductorApi:
    def __init__(self) -> None:
        self.leader = True

    @rpc_method()
    async def leader_state(self, params: Params) -> Any:
        return self.leader

    @rpc_method("leaderWithID")
    async def leader_with_id(self, params: Params) -> Any:
        return {"id": "a"}

    async def not_exported(self, params: Params) -> Any:
        return "hidden"


async def test_register_namespace_and_builtins() -> None:
    d = Dispatcher(version="v1.2.3")
    assert d.register_namespace("conductor", ConductorApi()) == [
        "conductor_leaderState",
        "conductor_leaderWithID",
    ]
    calls = [
        {"jsonrpc": "2.0", "method": name, "id": i}
        for i, name in enumerate(
            [
                "conductor_leaderState",
                "conductor_leaderWithID",
                "health_status",
                "rpc_modules",
                "conductor_notExported",
            ]
        )
    ]
    answer = await call_raw(d, json.dumps(calls))
    assert [a.get("result") for a in answer[:4]] == [
        True,
        {"id": "a"},
        "v1.2.3",
        {"conductor": "1.0", "health": "1.0", "rpc": "1.0"},
    ]
    assert answer[4]["error"]["code"] == -32601


def test_registration_errors() -> None:
    d = Dispatcher()
    d.register("a_b", _sum)
    with pytest.raises(ValueError, match="twice"):
        d.register("a_b", _sum)
    with pytest.raises(ValueError, match="invalid"):
        d.register("has space", _sum)
    assert d.methods == ["a_b"]
    assert Dispatcher().modules() == {}


async def test_fallback_forwards_unknown_methods() -> None:
    seen: list[Request] = []

    async def upstream(req: Request) -> dict[str, Any]:
        seen.append(req)
        if req.method == "eth_fail":
            raise RpcError(-32001, "upstream said no")
        return {"jsonrpc": "2.0", "id": "upstream-id", "result": "0x10"}

    d = Dispatcher(fallback=upstream)
    d.register("conductor_active", _get_data)
    batch = [
        {"jsonrpc": "2.0", "method": "eth_blockNumber", "id": 1},
        {"jsonrpc": "2.0", "method": "eth_fail", "params": [1], "id": 2},
        {"jsonrpc": "2.0", "method": "conductor_active", "id": 3},
    ]
    answer = await call_raw(d, json.dumps(batch))
    assert answer == [
        {"jsonrpc": "2.0", "id": 1, "result": "0x10"},
        {"jsonrpc": "2.0", "id": 2, "error": {"code": -32001, "message": "upstream said no"}},
        {"jsonrpc": "2.0", "id": 3, "result": ["hello", 5]},
    ]
    assert sorted(r.method for r in seen) == ["eth_blockNumber", "eth_fail"]


async def test_on_call_hook_reports_method_duration_code() -> None:
    calls: list[tuple[str, float, int | None]] = []

    def hook(method: str, seconds: float, code: int | None) -> None:
        calls.append((method, seconds, code))

    d = Dispatcher(on_call=hook, plain_errors=(NotLeaderError,))
    d.register("test_raise", _raise)
    batch = [
        {"jsonrpc": "2.0", "method": "test_raise", "params": ["ok"], "id": 1},
        {"jsonrpc": "2.0", "method": "test_raise", "params": ["plain"], "id": 2},
        {"jsonrpc": "2.0", "method": "made_up_name", "id": 3},
        {"jsonrpc": "2.0", "method": "test_raise", "params": ["ok"]},
    ]
    await call_raw(d, json.dumps(batch))
    assert sorted((m, c or 0) for m, _, c in calls) == [
        ("test_raise", -32000),
        ("test_raise", 0),
        ("test_raise", 0),
        ("unknown", -32601),
    ]
    assert all(s >= 0 for _, s, _ in calls)


async def test_broken_hook_does_not_break_calls() -> None:
    def hook(method: str, seconds: float, code: int | None) -> None:
        raise RuntimeError("metrics down")

    d = Dispatcher(on_call=hook)
    d.register("sum", _sum)
    assert await call_raw(d, '{"jsonrpc":"2.0","method":"sum","params":[1],"id":1}') == {
        "jsonrpc": "2.0",
        "id": 1,
        "result": 1,
    }


async def test_call_and_pure_helpers() -> None:
    d = spec_dispatcher()
    assert await d.call(Request("sum", [1, 2], 9)) == encode_result(9, 3)
    assert await d.call(Request("nope", [], 9)) == encode_error(9, rpc.MethodNotFound("nope"))
    assert list(iter_error_codes([encode_result(1, 2), encode_error(2, ServerError("x"))])) == [
        None,
        -32000,
    ]
    assert list(iter_error_codes(encode_error(1, InvalidParams()))) == [-32602]
    assert Request("a_b", [1], 2).to_dict() == {"jsonrpc": "2.0", "method": "a_b", "params": [1], "id": 2}
    assert rpc.lower_camel("add_server_as_voter") == "addServerAsVoter"
    out = await d.handle_value([{"jsonrpc": "2.0", "method": "sum", "params": [4], "id": 1}])
    assert out is not None and json.loads(out) == [encode_result(1, 4)]


# ---------------------------------------------------------------------------------------------
# Property tests: handle_body never raises and always answers valid JSON (or nothing)
# ---------------------------------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8), children, max_size=5)
    ),
    max_leaves=30,
)

request_like = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2]) | json_values,
        "method": st.sampled_from(["sum", "subtract", "get_data", "notify_hello", "x"]) | json_values,
        "params": st.lists(st.integers(), max_size=3) | json_values,
        "id": st.integers() | st.text(max_size=4) | json_values,
    },
)


def check_answer(out: bytes | None) -> None:
    if out is not None:
        answer = json.loads(out)
        assert isinstance(answer, dict | list)
        for item in answer if isinstance(answer, list) else [answer]:
            assert item["jsonrpc"] == "2.0"
            assert ("result" in item) != ("error" in item)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=st.binary(max_size=200))
async def test_random_bytes_never_raise(body: bytes) -> None:
    check_answer(await spec_dispatcher().handle_body(body))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=json_values | request_like | st.lists(request_like | json_values, max_size=6))
async def test_random_json_never_raises(value: Any) -> None:
    check_answer(await spec_dispatcher().handle_body(json.dumps(value).encode()))


# ---------------------------------------------------------------------------------------------
# baton.params
# ---------------------------------------------------------------------------------------------


def _params_error(fn: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(InvalidParams) as info:
        fn(*args, **kwargs)
    assert info.value.code == -32602
    return info.value.message


def test_param_int() -> None:
    assert param_int([5], 0) == 5
    assert param_int([0, 2**64 - 1], 1) == 2**64 - 1
    assert _params_error(param_int, [], 0) == "missing value for required argument 0"
    assert _params_error(param_int, [1, None], 1) == "missing value for required argument 1"
    assert _params_error(param_int, ["5"], 0, "version") == (
        "invalid argument 0 (version): cannot unmarshal string into an integer"
    )
    assert "bool" in _params_error(param_int, [True], 0)
    assert "number" in _params_error(param_int, [1.0], 0)
    assert "out of range" in _params_error(param_int, [-1], 0)
    assert "out of range" in _params_error(param_int, [2**64], 0)
    assert _params_error(param_int, {"version": 1}, 0) == "non-array args"


def test_param_str_bool_arity_optional() -> None:
    assert param_str(["a", 1], 0) == "a"
    assert "string" in _params_error(param_str, [1], 0)
    assert "empty" in _params_error(param_str, [""], 0, allow_empty=False)
    assert param_bool([False], 0) is False
    assert "bool" in _params_error(param_bool, [0], 0)
    assert check_arity([1, 2], 2) == [1, 2]
    assert _params_error(check_arity, [1, 2, 3], 2) == "too many arguments, want at most 2"
    assert param_optional([1, None], 0) and not param_optional([1, None], 1) and not param_optional([], 0)


def test_param_hex() -> None:
    assert param_hex_bytes(["0x"], 0) == b""
    assert param_hex_bytes(["0x00ff"], 0) == b"\x00\xff"
    assert param_hex_bytes(["0X" + "ab" * 32], 0, length=32) == b"\xab" * 32
    assert "without 0x prefix" in _params_error(param_hex_bytes, ["00"], 0)
    assert "odd length" in _params_error(param_hex_bytes, ["0x0"], 0)
    assert "invalid hex" in _params_error(param_hex_bytes, ["0x0g"], 0)
    assert "invalid hex" in _params_error(param_hex_bytes, ["0x0 1 "], 0)
    assert "has length 2, want 64" in _params_error(param_hex_bytes, ["0x00"], 0, length=32)
    assert param_address(["0x" + "11" * 20], 0) == b"\x11" * 20
    assert "want 40" in _params_error(param_address, ["0x" + "11" * 19], 0)
    assert param_quantity(["0x0"], 0) == 0
    assert param_quantity(["0x1a"], 0) == 26
    assert "leading zero" in _params_error(param_quantity, ["0x01"], 0)
    assert '"0x"' in _params_error(param_quantity, ["0x"], 0)
    assert "invalid hex" in _params_error(param_quantity, ["0x_1"], 0)
    assert "64 bits" in _params_error(param_quantity, ["0x1" + "0" * 16], 0)
    assert "cannot unmarshal number" in _params_error(param_quantity, [26], 0)
