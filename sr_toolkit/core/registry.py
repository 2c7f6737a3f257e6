"""Registries of components (models, losses, degradations, datasets, metrics) built by name.

A plugin registers a class or factory with a decorator::

    from sr_toolkit.core.registry import MODELS

    @MODELS.register("my_net")
    class MyNet(torch.nn.Module):
        '''One line that ``python -m sr_toolkit list`` shows.'''

and a recipe builds it from a mapping: ``MODELS.build({"type": "my_net", "channels": 32})``.
The first use of any registry imports every plugin declared under the entry-point group
``sr_toolkit.plugins`` (see :mod:`sr_toolkit.core.discovery`).
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sr_toolkit.core import discovery
from sr_toolkit.core.errors import RegistryError, SrToolkitError
from sr_toolkit.core.typecheck import describe, matches


@dataclass(frozen=True)
class Entry:
    """One registered component: what builds it and where it came from."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str

    @property
    def summary(self) -> str:
        """The first line of the component's docstring ('' when it has none)."""
        doc = inspect.getdoc(self.factory) or ""
        return doc.splitlines()[0] if doc else ""

    @property
    def source(self) -> str:
        """File and qualified name of the definition, to recognise a module imported twice."""
        try:
            where = str(Path(inspect.getfile(self.factory)).resolve())
        except (TypeError, OSError):
            where = self.factory.__module__
        return f"{where}:{self.factory.__qualname__}"


@dataclass(frozen=True)
class Parameter:
    """One argument a component accepts, with its type hint (``Any`` when unannotated) and its
    default (``inspect.Parameter.empty`` when it has none)."""

    name: str
    hint: Any
    default: Any

    @property
    def required(self) -> bool:
        """True when the argument has no default."""
        return self.default is inspect.Parameter.empty


def parameters(factory: Callable[..., Any]) -> dict[str, Parameter] | None:
    """The keyword arguments ``factory`` accepts, or None when it takes ``**kwargs``."""
    signature = inspect.signature(factory)
    target = factory.__init__ if inspect.isclass(factory) else factory
    try:
        hints = typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - unresolvable annotations: check names, not types
        hints = {}
    result = {}
    for name, param in signature.parameters.items():
        if param.kind is inspect.Parameter.VAR_KEYWORD:
            return None
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.POSITIONAL_ONLY):
            continue
        result[name] = Parameter(name, hints.get(name, Any), param.default)
    return result


def closest(word: str, choices: list[str]) -> list[str]:
    """Up to three choices that look like ``word``, best first."""
    return difflib.get_close_matches(word, choices, n=3, cutoff=0.5)


class Registry:
    """Components of one kind, registered by name and built from ``{"type": name, **kwargs}``."""

    def __init__(self, kind: str, plural: str) -> None:
        self.kind = kind
        self.plural = plural
        self._entries: dict[str, Entry] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """Decorator that registers a class or factory under ``name``."""

        def decorate(factory: Callable[..., Any]) -> Callable[..., Any]:
            entry = Entry(self.kind, name, factory, discovery.current_plugin(factory))
            existing = self._entries.get(name)
            if existing is not None and existing.source != entry.source:
                raise RegistryError(
                    f"{self.kind} '{name}' is registered twice: by {existing.plugin} "
                    f"({existing.factory.__module__}.{existing.factory.__qualname__}) and by "
                    f"{entry.plugin} ({factory.__module__}.{factory.__qualname__}); rename one"
                )
            self._entries[name] = entry
            return factory

        return decorate

    def entries(self) -> Iterator[Entry]:
        """Every registered component, sorted by name."""
        discovery.load_entry_points()
        return iter(sorted(self._entries.values(), key=lambda entry: entry.name))

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return [entry.name for entry in self.entries()]

    def __contains__(self, name: object) -> bool:
        discovery.load_entry_points()
        return name in self._entries

    def get(self, name: str) -> Entry:
        """The entry registered under ``name``; an unknown name raises with close matches."""
        discovery.load_entry_points()
        if name not in self._entries:
            hints = closest(str(name), list(self._entries))
            close = f" (close matches: {', '.join(hints)})" if hints else ""
            raise RegistryError(
                f"unknown {self.kind} '{name}'{close}; see 'sr-toolkit list {self.plural}', "
                "or load the plugin that registers it (a recipe's 'plugins:' list, or the command's --plugins)"
            )
        return self._entries[name]

    def check(self, spec: Any, where: str | None = None) -> Entry:
        """Validate a build mapping without building: known type, known arguments, right types.

        ``where`` is the recipe key path the mapping sits at (``model``, ``data.train``), used in
        error messages. Returns the entry the mapping names.
        """
        where = where or self.kind
        if not isinstance(spec, Mapping) or "type" not in spec:
            raise RegistryError(f"{where}: expected a mapping with a 'type' key naming a {self.kind}, got {spec!r}")
        try:
            entry = self.get(spec["type"])
        except RegistryError as exc:
            raise RegistryError(f"{where}.type: {exc}") from None
        accepted = parameters(entry.factory)
        if accepted is None:
            return entry
        label = f"{self.kind} '{entry.name}'"
        for key, value in spec.items():
            if key == "type":
                continue
            if key not in accepted:
                hints = closest(key, list(accepted))
                guess = f" (did you mean '{hints[0]}'?)" if hints else ""
                raise RegistryError(
                    f"{where}.{key}: {label} has no argument '{key}'{guess}; "
                    f"it takes: {', '.join(accepted) or 'no arguments'}"
                )
            hint = accepted[key].hint
            if not matches(value, hint):
                raise RegistryError(
                    f"{where}.{key}: {label} expects {describe(hint)}, got {value!r} ({type(value).__name__})"
                )
        for param in accepted.values():
            if param.required and param.name not in spec:
                raise RegistryError(f"{where}.{param.name}: {label} needs argument '{param.name}'")
        return entry

    def build(self, spec: Mapping[str, Any], where: str | None = None, **extra: Any) -> Any:
        """Build the component a mapping names; ``extra`` adds arguments the caller supplies."""
        entry = self.check({**spec, **extra}, where)
        kwargs = {key: value for key, value in {**spec, **extra}.items() if key != "type"}
        try:
            return entry.factory(**kwargs)
        except (ValueError, SrToolkitError) as exc:  # the message gains the key path and component
            error = type(exc) if isinstance(exc, SrToolkitError) else RegistryError
            raise error(f"{where or self.kind}: {self.kind} '{entry.name}': {exc}") from exc


class ModelRegistry(Registry):
    """The models' registry: each image model it builds carries its contract
    (:mod:`sr_toolkit.core.model_contract`); a discriminator (``is_discriminator = True``) carries none."""

    def build(self, spec: Mapping[str, Any], where: str | None = None, **extra: Any) -> Any:
        """Build the model a mapping names and attach its contract (with the mapping as its ``spec``)."""
        from sr_toolkit.core import model_contract  # imports torch: only when a model is built

        model = super().build(spec, where, **extra)
        if model_contract.is_discriminator(model):
            return model
        full = {**spec, **extra}
        accepted = parameters(self.get(full["type"]).factory) or {}
        default = accepted["scale"].default if "scale" in accepted and not accepted["scale"].required else None
        try:
            contract = model_contract.derive_contract(
                model, architecture=full["type"], spec=full, scale=full.get("scale", default)
            )
        except SrToolkitError as exc:
            raise type(exc)(f"{where or self.kind}: {exc}") from exc
        return model_contract.attach(model, contract)

    def build_image_model(self, spec: Mapping[str, Any], where: str | None = None, **extra: Any) -> Any:
        """:meth:`build` for a place that needs an image-to-image model: a discriminator is refused."""
        from sr_toolkit.core import model_contract

        entry = self.check({**spec, **extra}, where)
        if model_contract.is_discriminator(entry.factory):
            raise RegistryError(
                f"{where or self.kind}: model '{entry.name}' is a discriminator, not an "
                "image-to-image model; it belongs under gan.discriminator"
            )
        return self.build(spec, where, **extra)


MODELS = ModelRegistry("model", "models")
LOSSES = Registry("loss", "losses")
DEGRADATIONS = Registry("degradation", "degradations")
DATASETS = Registry("dataset", "datasets")
METRICS = Registry("metric", "metrics")

REGISTRIES: dict[str, Registry] = {
    registry.plural: registry for registry in (MODELS, LOSSES, DEGRADATIONS, DATASETS, METRICS)
}
