"""The recipe schema as JSON Schema (draft 2020-12), for editors that complete and check YAML.

Generated from the objects of :mod:`sr_toolkit.config.recipe_schema` and from the registries: each
component's ``type`` is an enum of the registered names, and each name's arguments come from its
signature and type hints (:func:`sr_toolkit.core.registry.parameters`), so a plugin's components
appear once its module is imported. The schema describes a recipe file as written: every key is
optional (a ``base:`` recipe or the defaults supply the rest), and a component mapping without a
``type`` (a child recipe changing the base's arguments) is not checked further. The resolved recipe
a run saves is a recipe file too, and passes as well.
"""

from __future__ import annotations

import collections.abc
import json
import types
import typing
from typing import Any, Literal, Union

from sr_toolkit.config.recipe_schema import (
    RECIPE_SCHEMA,
    AtLeast,
    Component,
    ComponentList,
    Field,
    Node,
    Section,
)
from sr_toolkit.core.registry import Registry, parameters

DRAFT = "https://json-schema.org/draft/2020-12/schema"

JSON = dict[str, Any]

_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string"}


def hint_schema(hint: Any) -> JSON:
    """The JSON Schema of the values :func:`sr_toolkit.core.typecheck.matches` accepts for ``hint``
    (``{}``, anything, for a hint it cannot check either)."""
    if hint is None or hint is type(None):
        return {"type": "null"}
    if isinstance(hint, type) and hint in _TYPES:
        return {"type": _TYPES[hint]}
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return {"anyOf": [hint_schema(arg) for arg in args]}
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, collections.abc.Sequence):
        if origin is tuple and args and args[-1] is not Ellipsis:
            return {
                "type": "array",
                "prefixItems": [hint_schema(arg) for arg in args],
                "minItems": len(args),
                "maxItems": len(args),
            }
        return {"type": "array", **({"items": hint_schema(args[0])} if args else {})}
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        return {"type": "object", **({"additionalProperties": hint_schema(args[1])} if args else {})}
    if hint in (list, tuple):
        return {"type": "array"}
    return {}


def or_null(schema: JSON) -> JSON:
    """``schema``, or null (an if/then/else rather than anyOf, so an error names the key that is wrong)."""
    return {"if": {"type": "null"}, "else": schema}


def with_default(schema: JSON, value: Any) -> JSON:
    """``schema`` with ``"default": value`` when JSON can say the value."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return schema
    return {**schema, "default": list(value) if isinstance(value, tuple) else value}


def field_schema(node: Field) -> JSON:
    """A plain field: its type, default, description and lower bound."""
    schema = hint_schema(node.hint)
    if isinstance(node.check, AtLeast):
        schema["minimum"] = node.check.minimum
    if node.doc:
        schema["description"] = node.doc
    return schema if node.required else with_default(schema, node.default())


class Generator:
    """Builds the schema; each component kind is described once under ``$defs`` and referenced."""

    def __init__(self) -> None:
        self.defs: dict[str, JSON] = {}

    def node(self, node: Node) -> JSON:
        """The schema of one node of the recipe schema."""
        if isinstance(node, Field):
            return field_schema(node)
        if isinstance(node, Section):
            properties = {key: self.node(child) for key, child in node.fields.items()}
            schema: JSON = {"type": "object", "properties": properties, "additionalProperties": False}
        elif isinstance(node, Component):
            schema = self.component(node.registry, node.item_fields)
            if node.optional:
                schema = or_null(schema)
        elif isinstance(node, ComponentList):
            item = self.component(node.registry, node.item_fields)
            listed = {"items": item, **({"minItems": 1} if node.non_empty else {})}
            # a list, or one mapping taken as a list of one; if/then/else (not anyOf) keeps errors precise
            schema = {"if": {"type": "array"}, "then": listed, "else": item if node.non_empty else or_null(item)}
        else:
            raise TypeError(f"no JSON Schema for a {type(node).__name__}")
        if node.doc:
            schema["description"] = node.doc
        if isinstance(node, (Component, ComponentList)) and node.value is not None:
            schema = with_default(schema, node.default())
        return schema

    def component(self, registry: Registry, item_fields: dict[str, Field]) -> JSON:
        """A reference to the schema of a ``{type: NAME, ...}`` mapping of ``registry``'s kind, plus the
        extra keys ``item_fields`` every item may carry (a loss term's ``weight``)."""
        name = "_".join((registry.kind, *item_fields))
        if name not in self.defs:
            self.defs[name] = component_schema(registry, {key: field_schema(f) for key, f in item_fields.items()})
        return {"$ref": f"#/$defs/{name}"}


def component_schema(registry: Registry, extra: dict[str, JSON]) -> JSON:
    """``{type: NAME, **arguments}``: ``type`` one of the registered names; with a ``type``, the keys are
    that component's arguments (any keys when it takes ``**kwargs``) and ``extra``."""
    names = registry.names()
    cases = []
    for entry in registry.entries():
        accepted = parameters(entry.factory)
        then: JSON = {"properties": {"type": {"const": entry.name}, **extra}}
        if entry.summary:
            then["description"] = entry.summary
        if accepted is not None:
            then["properties"].update(
                {p.name: argument_schema(p.hint, p.default, p.required) for p in accepted.values()}
            )
            then["additionalProperties"] = False
        cases.append({"if": {"properties": {"type": {"const": entry.name}}, "required": ["type"]}, "then": then})
    return {
        "type": "object",
        "description": f"a {registry.kind}: {{type: NAME, ...arguments}} ('sr-toolkit list {registry.plural}')",
        "properties": {"type": {"enum": names, "description": f"a registered {registry.kind}"}, **extra},
        "allOf": cases,
    }


def argument_schema(hint: Any, default: Any, required: bool) -> JSON:
    """One component argument: its type hint, and its default unless it is required."""
    schema = hint_schema(hint)
    return schema if required else with_default(schema, default)


def recipe_json_schema() -> JSON:
    """The JSON Schema of a recipe file, with the components of every plugin imported so far."""
    generator = Generator()
    body = generator.node(RECIPE_SCHEMA)
    base = {
        "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
        "description": "recipe file(s) this one is merged over, relative to it",
    }
    body["properties"] = {"base": base, **body["properties"]}
    return {
        "$schema": DRAFT,
        "title": "sr-toolkit recipe",
        "description": "A training recipe for sr-toolkit (YAML); see the README's Recipes section.",
        **body,
        "$defs": generator.defs,
    }
