"""Check plain recipe values (YAML scalars, lists, mappings) against Python type hints."""

from __future__ import annotations

import collections.abc
import types
import typing
from typing import Any, Literal, Union

Range = float | tuple[float, float]
"""A parameter given either as one number or as a [low, high] range sampled per image."""


def matches(value: Any, hint: Any) -> bool:
    """Return True when ``value`` is acceptable for the type hint ``hint``.

    Understands the hints recipes use: builtins, ``Any``, ``Optional``/``Union``/``X | Y``,
    ``Literal``, ``list``/``tuple``/``Sequence`` (YAML gives lists for both) and ``dict``/``Mapping``.
    An ``int`` is accepted where a ``float`` is expected; a ``bool`` is never taken for a number.
    """
    if hint is Any or hint is typing.Any or hint is object:
        return True
    if hint is None or hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return any(matches(value, arg) for arg in args)
    if origin is Literal:
        return any(value == arg and type(value) is type(arg) for arg in args)
    if origin in (list, tuple, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False
        if origin is tuple and args and args[-1] is not Ellipsis:
            return len(value) == len(args) and all(matches(v, a) for v, a in zip(value, args))
        item_hint = args[0] if args else Any
        return all(matches(v, item_hint) for v in value)
    if origin in (dict, collections.abc.Mapping):
        if not isinstance(value, dict):
            return False
        key_hint, value_hint = args if args else (Any, Any)
        return all(matches(k, key_hint) and matches(v, value_hint) for k, v in value.items())
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # a hint we cannot check (a protocol, a forward reference): accept


def describe(hint: Any) -> str:
    """A short human name for a type hint, for error messages."""
    if hint is type(None):
        return "null"
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(describe(arg) for arg in args)
    if origin is Literal:
        return "one of " + "|".join(str(arg) for arg in args)
    if origin in (list, tuple, collections.abc.Sequence):
        return "a list" if not args else f"a list of {describe(args[0])}"
    if origin in (dict, collections.abc.Mapping):
        return "a mapping"
    return getattr(hint, "__name__", str(hint))
