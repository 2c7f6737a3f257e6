"""Declarative recipe schemas: plain fields, sections and registry-built components.

A schema node validates one value found at a key path, and returns it with defaults filled in,
so the resolved recipe saved with a run lists every value the run used.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sr_toolkit.core.errors import RecipeError
from sr_toolkit.core.registry import Registry, closest, parameters
from sr_toolkit.core.typecheck import describe, matches

_PLAIN = (type(None), bool, int, float, str, list, tuple, dict)


class Node:
    """A schema node: ``resolve`` checks a value at ``where`` and fills in defaults."""

    def resolve(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def default(self) -> Any:
        raise NotImplementedError


_MISSING = object()


@dataclass(frozen=True)
class Field(Node):
    """A plain value with a type hint and a default (``required=True`` for none); ``check``, if
    given, returns what is wrong with a value of the right type (e.g. "must be at least 1"), or None."""

    hint: Any
    value: Any = None
    required: bool = False
    check: Callable[[Any], str | None] | None = None

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING:
            if self.required:
                raise RecipeError(f"{where}: required key is missing ({describe(self.hint)})")
            return self.default()
        if not matches(value, self.hint):
            raise RecipeError(
                f"{where}: expected {describe(self.hint)}, got {value!r} ({type(value).__name__})"
            )
        problem = self.check(value) if self.check is not None else None
        if problem:
            raise RecipeError(f"{where}: {problem}, got {value!r}")
        return value

    def default(self) -> Any:
        return copy.deepcopy(self.value)


@dataclass(frozen=True)
class Section(Node):
    """A mapping with a fixed set of keys; an unknown key is an error with a suggestion."""

    fields: dict[str, Node]

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING or value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise RecipeError(f"{where or 'recipe'}: expected a mapping, got {value!r}")
        for key in value:
            if key not in self.fields:
                path = f"{where}.{key}" if where else str(key)
                hints = closest(str(key), list(self.fields))
                guess = f" (did you mean '{hints[0]}'?)" if hints else ""
                raise RecipeError(
                    f"{path}: unknown key{guess}; valid keys here: {', '.join(self.fields)}"
                )
        return {
            key: node.resolve(value.get(key, _MISSING), f"{where}.{key}" if where else key)
            for key, node in self.fields.items()
        }

    def default(self) -> Any:
        return {key: node.default() for key, node in self.fields.items()}


def at_least(minimum: int) -> Callable[[Any], str | None]:
    """A :class:`Field` check: numbers below ``minimum`` are refused (None passes)."""

    def check(value: Any) -> str | None:
        return f"must be at least {minimum}" if value is not None and value < minimum else None

    return check


def component_defaults(registry: Registry, spec: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` with the defaults of the component's plain-valued arguments filled in."""
    entry = registry.get(spec["type"])
    filled = dict(spec)
    signature = inspect.signature(entry.factory)
    for name, param in (parameters(entry.factory) or {}).items():
        default = signature.parameters[name].default
        if name not in filled and not param.required and isinstance(default, _PLAIN):
            filled[name] = copy.deepcopy(list(default) if isinstance(default, tuple) else default)
    return filled


@dataclass(frozen=True)
class Component(Node):
    """A mapping ``{type: name, **kwargs}`` built by a registry; None when ``optional``."""

    registry: Registry
    value: Mapping[str, Any] | None = None
    optional: bool = False

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING:
            value = copy.deepcopy(self.value)
        if value is None:
            if self.optional:
                return None
            raise RecipeError(f"{where}: required; give a mapping with 'type: <{self.registry.kind}>'")
        try:
            self.registry.check(value, where)
        except Exception as exc:
            raise RecipeError(str(exc)) from exc
        return component_defaults(self.registry, value)

    def default(self) -> Any:
        return copy.deepcopy(self.value)


@dataclass(frozen=True)
class ComponentList(Node):
    """A list of components (a single mapping is taken as a list of one); each item may carry the
    extra plain keys in ``item_fields`` (a loss term's ``weight``)."""

    registry: Registry
    value: list[Mapping[str, Any]] = field(default_factory=list)
    item_fields: dict[str, Field] = field(default_factory=dict)

    def resolve(self, value: Any, where: str) -> Any:
        if value is _MISSING:
            value = copy.deepcopy(self.value)
        if value is None:
            return []
        items = [value] if isinstance(value, Mapping) else value
        if not isinstance(items, list):
            raise RecipeError(f"{where}: expected a list of mappings with 'type', got {value!r}")
        resolved = []
        for index, item in enumerate(items):
            here = f"{where}.{index}"
            if not isinstance(item, Mapping):
                raise RecipeError(f"{here}: expected a mapping with 'type', got {item!r}")
            extras = {k: f.resolve(item.get(k, _MISSING), f"{here}.{k}") for k, f in self.item_fields.items()}
            spec = {k: v for k, v in item.items() if k not in self.item_fields}
            resolved.append({**Component(self.registry).resolve(spec, here), **extras})
        return resolved

    def default(self) -> Any:
        return copy.deepcopy(self.value)
