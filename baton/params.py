"""Typed validators for positional JSON-RPC params, raising geth-worded ``InvalidParams`` (-32602).

geth decodes positional arguments into Go types and answers mistakes with -32602 and texts such
as ``missing value for required argument 0``, ``too many arguments, want at most 2``,
``non-array args`` and ``invalid argument 1: <json error>``. These helpers give handlers the same
behaviour in a line each::

    async def sequencer_healthy(params: Params) -> bool:
        check_arity(params, 0)
        ...

    async def add_server_as_voter(params: Params) -> None:
        check_arity(params, 3)
        server_id = param_str(params, 0, "id")
        addr = param_str(params, 1, "addr")
        version = param_int(params, 2, "version")
"""

from __future__ import annotations

from typing import Any, Final

from baton.jsonrpc import InvalidParams, Params

__all__ = [
    "UINT64_MAX",
    "check_arity",
    "param_address",
    "param_bool",
    "param_hex_bytes",
    "param_int",
    "param_optional",
    "param_quantity",
    "param_str",
    "positional",
]

UINT64_MAX: Final = 2**64 - 1


def positional(params: Params) -> list[Any]:
    """The params as a list; named (object) params are rejected like geth does."""
    if isinstance(params, dict):
        raise InvalidParams("non-array args")
    return params


def check_arity(params: Params, max_args: int) -> list[Any]:
    """Reject more than ``max_args`` positional arguments (geth: "too many arguments, want at most N")."""
    args = positional(params)
    if len(args) > max_args:
        raise InvalidParams(f"too many arguments, want at most {max_args}")
    return args


def _arg(params: Params, i: int) -> Any:
    args = positional(params)
    if i >= len(args) or args[i] is None:
        raise InvalidParams(f"missing value for required argument {i}")
    return args[i]


def _invalid(i: int, name: str | None, problem: str) -> InvalidParams:
    label = f" ({name})" if name else ""
    return InvalidParams(f"invalid argument {i}{label}: {problem}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def param_optional(params: Params, i: int) -> bool:
    """True when argument ``i`` is present and not null (for optional trailing arguments)."""
    args = positional(params)
    return i < len(args) and args[i] is not None


def param_int(
    params: Params, i: int, name: str | None = None, *, minimum: int = 0, maximum: int = UINT64_MAX
) -> int:
    """A plain JSON integer (geth ``uint64`` by default: 0 ≤ n < 2**64; no floats, no hex strings)."""
    value = _arg(params, i)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(i, name, f"cannot unmarshal {_json_type(value)} into an integer")
    if not minimum <= value <= maximum:
        raise _invalid(i, name, f"number {value} out of range [{minimum}, {maximum}]")
    return value


def param_str(params: Params, i: int, name: str | None = None, *, allow_empty: bool = True) -> str:
    value = _arg(params, i)
    if not isinstance(value, str):
        raise _invalid(i, name, f"cannot unmarshal {_json_type(value)} into a string")
    if not allow_empty and not value:
        raise _invalid(i, name, "empty string")
    return value


def param_bool(params: Params, i: int, name: str | None = None) -> bool:
    value = _arg(params, i)
    if not isinstance(value, bool):
        raise _invalid(i, name, f"cannot unmarshal {_json_type(value)} into a bool")
    return value


_HEX_DIGITS: Final = frozenset("0123456789abcdefABCDEF")


def _is_hex(digits: str) -> bool:
    return all(c in _HEX_DIGITS for c in digits)


def _hex_digits(value: Any, i: int, name: str | None) -> str:
    if not isinstance(value, str):
        raise _invalid(i, name, f"cannot unmarshal {_json_type(value)} into a hex string")
    if not value.startswith(("0x", "0X")):
        raise _invalid(i, name, "hex string without 0x prefix")
    return value[2:]


def param_hex_bytes(params: Params, i: int, name: str | None = None, *, length: int | None = None) -> bytes:
    """A ``0x``-prefixed hex string of even length, optionally of exactly ``length`` bytes."""
    digits = _hex_digits(_arg(params, i), i, name)
    if len(digits) % 2:
        raise _invalid(i, name, "hex string of odd length")
    if not _is_hex(digits):
        raise _invalid(i, name, "invalid hex string")
    data = bytes.fromhex(digits)
    if length is not None and len(data) != length:
        raise _invalid(i, name, f"hex string has length {len(digits)}, want {2 * length}")
    return data


def param_address(params: Params, i: int, name: str | None = None) -> bytes:
    """A 20-byte address as ``0x`` + 40 hex digits (checksum case is not verified)."""
    return param_hex_bytes(params, i, name, length=20)


def param_quantity(params: Params, i: int, name: str | None = None, *, maximum: int = UINT64_MAX) -> int:
    """An Ethereum hex quantity (``hexutil.Uint64``): ``0x0``, ``0x1a``; no leading zeros."""
    digits = _hex_digits(_arg(params, i), i, name)
    if not digits:
        raise _invalid(i, name, "hex string \"0x\"")
    if len(digits) > 1 and digits[0] == "0":
        raise _invalid(i, name, "hex number with leading zero digits")
    if not _is_hex(digits):
        raise _invalid(i, name, "invalid hex string")
    value = int(digits, 16)
    if value > maximum:
        raise _invalid(i, name, "hex number > 64 bits" if maximum == UINT64_MAX else "hex number too large")
    return value
