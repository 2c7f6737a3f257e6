"""Recipes: YAML files with ``base:`` inheritance, ``key.path=value`` overrides and a schema.

:func:`load_recipe` reads a recipe, merges its bases, applies command-line overrides, imports the
plugins it lists, validates every key against the schema
(:data:`~sr_toolkit.config.recipe_schema.RECIPE_SCHEMA`; component arguments against the
component's own signature) and checks the rules between keys (:mod:`sr_toolkit.config.rules`),
before any work starts. The result is a plain dict with
every default filled in; :func:`dump_recipe` writes it back as YAML.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sr_toolkit.config.recipe_schema import APPLIES_TO, INHERITED_KEYS, RECIPE_SCHEMA, SPLITS, Section, component_specs
from sr_toolkit.config.rules import check_rules
from sr_toolkit.config.shipped import find_base
from sr_toolkit.core.discovery import import_plugins, is_plugin_file, plugin_file
from sr_toolkit.core.errors import RecipeError
from sr_toolkit.core.registry import DATASETS, Registry, parameters


class RecipeLoader(yaml.SafeLoader):
    """Safe YAML loader with YAML 1.2 scalars: ``1e-3`` is a float (YAML 1.1 wants ``1.0e-3``)
    and only true/false are booleans, so ``mixed_precision: no`` stays the string ``no``."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
RecipeLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
RecipeLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

RecipeLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def read_yaml(path: Path) -> dict[str, Any]:
    """Safe-load one YAML mapping, with errors that name the file (and line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError(f"recipe file not found: {path}") from None
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}") from exc
    try:
        data = yaml.load(text, Loader=RecipeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f", line {mark.line + 1}" if mark is not None else ""
        raise RecipeError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: a recipe must be a mapping of keys, got {type(data).__name__}")
    return data


class Replace(dict):
    """A mapping tagged ``!replace`` in a recipe: it replaces the base's mapping instead of merging."""


def construct_replace(loader: RecipeLoader, node: yaml.MappingNode) -> Replace:
    """``!replace {...}``: the mapping, tagged to replace rather than merge."""
    return Replace(loader.construct_mapping(node, deep=True))


RecipeLoader.add_constructor("!replace", construct_replace)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Merge ``override`` into ``base``: mappings merge key by key, anything else replaces.

    A mapping replaces the base's whole when it is tagged ``!replace``, or when both are components
    of different ``type`` (the base's arguments belong to the other type): ``model: {type: edsr}``
    over a base's ``model: {type: resnet_x4, blocks: 2}`` is just ``{type: edsr}``.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        earlier = merged.get(key)
        if (
            isinstance(value, Mapping)
            and isinstance(earlier, Mapping)
            and not isinstance(value, Replace)
            and value.get("type", earlier.get("type")) == earlier.get("type")
        ):
            merged[key] = deep_merge(earlier, value)
        else:
            merged[key] = copy.deepcopy(dict(value) if isinstance(value, Replace) else value)
    return merged


def read_with_bases(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A recipe merged over its ``base:`` recipes (a path or a list, relative to the file, or shipped
    recipe names: :func:`~sr_toolkit.config.shipped.find_base`)."""
    path = path.resolve()
    if path in _chain:
        cycle = " -> ".join(p.name for p in (*_chain, path))
        raise RecipeError(f"{path}: 'base:' inheritance cycle: {cycle}")
    data = read_yaml(path)
    bases = data.pop("base", None) or []
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise RecipeError(f"{path}: 'base' must be a file name or a list of them, got {bases!r}")
    merged: dict[str, Any] = {}
    for base in bases:
        merged = deep_merge(merged, read_with_bases(find_base(base, path), (*_chain, path)))
    return deep_merge(merged, data)


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``train.max_steps=20`` into a key path and a YAML-parsed value."""
    key, sep, raw = text.partition("=")
    if not sep or not key or any(not part for part in key.split(".")):
        raise RecipeError(f"override '{text}': expected key.path=value, e.g. train.max_steps=20")
    try:
        value = yaml.load(raw, Loader=RecipeLoader) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise RecipeError(f"override '{text}': value is not valid YAML: {exc}") from exc
    return key.split("."), value


def apply_override(recipe: dict[str, Any], keys: Sequence[str], value: Any) -> None:
    """Set ``value`` at a key path, creating mappings on the way; digits index into lists."""
    node: Any = recipe
    for depth, key in enumerate(keys):
        last = depth == len(keys) - 1
        where = ".".join(keys[: depth + 1])
        if isinstance(node, list):
            if not key.isdigit() or int(key) >= len(node):
                raise RecipeError(f"override {where}: no item {key} in a list of {len(node)}")
            if last:
                node[int(key)] = value
            else:
                node = node[int(key)]
        elif isinstance(node, dict):
            if last:
                node[key] = value
            else:
                node = node.setdefault(key, {})
        else:
            raise RecipeError(f"override {where}: '{'.'.join(keys[:depth])}' is not a mapping")


def fill_component_defaults(raw: dict[str, Any]) -> None:
    """Put the schema's default seed and datasets into a raw recipe, so they inherit too."""
    raw.setdefault("seed", RECIPE_SCHEMA.fields["seed"].default())
    data = raw.setdefault("data", {})
    if isinstance(data, dict):
        data_section = RECIPE_SCHEMA.fields["data"]
        assert isinstance(data_section, Section)
        for split, node in data_section.fields.items():
            if split in SPLITS and split not in data:
                data[split] = node.default()


def accepted_arguments(registry: Registry, spec: Any) -> dict[str, Any]:
    """The arguments the component ``spec`` names takes (empty if missing or unknown: validation
    reports those)."""
    if not isinstance(spec, dict) or spec.get("type") not in registry:
        return {}
    return parameters(registry.get(spec["type"]).factory) or {}


def inherit_globals(raw: dict[str, Any]) -> None:
    """Give each component the recipe's ``scale`` and ``seed``, and each dataset its ``split``,
    when it takes them and omits them."""
    for where, registry, spec in component_specs(raw):
        accepted = accepted_arguments(registry, spec)
        for key in INHERITED_KEYS:
            if key in raw and key in accepted and key not in spec:
                spec[key] = raw[key]
        split = where.removeprefix("data.")
        if registry is DATASETS and split in SPLITS and "split" in accepted and "split" not in spec:
            spec["split"] = split


def drop_inapplicable(recipe: dict[str, Any]) -> None:
    """Remove the :data:`APPLIES_TO` keys that the chosen optimizer or scheduler type does not read."""
    for section in (recipe["optimizer"], recipe["gan"]["optimizer"], recipe["scheduler"]):
        for key, types in APPLIES_TO.items():
            if key in section and section["type"] not in types:
                del section[key]


def blame_override(message: str, overrides: Sequence[str]) -> str | None:
    """The command-line override that an error at ``message``'s key path comes from, if any."""
    where = message.split(":", 1)[0]
    for text in reversed(overrides):
        key = text.partition("=")[0]
        if where == key or where.startswith(key + ".") or key.startswith(where + "."):
            return text
    return None


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Read, merge, override, import plugins and validate a recipe; return it fully resolved."""
    path = Path(path)
    raw = read_with_bases(path)
    for text in overrides:
        apply_override(raw, *parse_override(text))
    plugins = raw.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise RecipeError(f"{path}: plugins: expected a list of module names or .py paths")
    # file plugins are found next to the recipe and kept as absolute paths, so the saved recipe and
    # the model file load them from any working directory (upscale, eval, export)
    raw["plugins"] = [str(plugin_file(p, path.resolve().parent)) if is_plugin_file(p) else p for p in plugins]
    import_plugins(raw["plugins"])
    fill_component_defaults(raw)
    inherit_globals(raw)
    try:
        recipe = RECIPE_SCHEMA.resolve(raw, "")
        check_rules(recipe, raw)
        drop_inapplicable(recipe)
    except RecipeError as exc:
        override = blame_override(str(exc), overrides)
        raise RecipeError(f"{f'override {override}' if override else path}: {exc}") from exc
    recipe["name"] = recipe["name"] or path.stem
    recipe["output_dir"] = recipe["output_dir"] or default_output_dir(recipe["name"])
    if recipe["validation"]["crop_border"] is None:
        recipe["validation"]["crop_border"] = recipe["scale"]
    return recipe


def default_output_dir(name: str) -> str:
    """Where a run named ``name`` goes when the recipe names no ``output_dir``."""
    return str(Path("runs") / name)


def dump_recipe(recipe: Mapping[str, Any]) -> str:
    """The recipe as YAML text, keys in schema order. Values that follow from others are left out
    where they do, so they follow again when the text is loaded with overrides: a component's
    ``scale`` or ``seed`` equal to the top level's, ``output_dir`` equal to ``runs/<name>``, and
    ``validation.crop_border`` equal to ``scale`` (``runs/x4/recipe.yaml scale=2 name=x2`` is then a
    new x2 run in ``runs/x2``, scored with a 2-pixel border)."""
    dumped = copy.deepcopy(dict(recipe))
    for _, _, spec in component_specs(dumped):
        for key in INHERITED_KEYS:
            if isinstance(spec, dict) and key in spec and spec[key] == dumped.get(key):
                del spec[key]
    if dumped.get("output_dir") == default_output_dir(dumped.get("name") or ""):
        del dumped["output_dir"]
    validation = dumped.get("validation")
    if isinstance(validation, dict) and validation.get("crop_border") == dumped.get("scale"):
        del validation["crop_border"]
    return yaml.safe_dump(dumped, sort_keys=False, default_flow_style=None)
