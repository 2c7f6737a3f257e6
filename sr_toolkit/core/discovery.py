"""Finding plugins: entry points of installed distributions, and modules a recipe lists.

A plugin is any module that registers components when imported. An installed distribution
declares it in its packaging metadata::

    [project.entry-points."sr_toolkit.plugins"]
    my_plugin = "my_package.sr_plugin"

sr-toolkit's own first-party plugins are declared exactly this way. A recipe may also name
modules or ``.py`` files under ``plugins:``; :func:`import_plugins` imports those.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import importlib.util
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from sr_toolkit.core.errors import PluginError, SrToolkitError

ENTRY_POINT_GROUP = "sr_toolkit.plugins"

_loaded = False
_loading_plugin: str | None = None


@functools.cache
def _entry_point_modules() -> dict[str, str]:
    """Module named by each ``sr_toolkit.plugins`` entry point -> its distribution's name."""
    return {
        entry_point.module: entry_point.dist.name if entry_point.dist else entry_point.module
        for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    }


def current_plugin(factory: Callable[..., Any]) -> str:
    """The plugin a component being registered belongs to: the distribution whose entry point
    (or a module inside it) defines it, else what is being imported, else its module."""
    module = factory.__module__
    for package, distribution in _entry_point_modules().items():
        if module == package or module.startswith(package + "."):
            return distribution
    return _loading_plugin or module


def _import_as(plugin: str, load: Callable[[], Any]) -> None:
    global _loading_plugin
    previous, _loading_plugin = _loading_plugin, plugin
    try:
        load()
    finally:
        _loading_plugin = previous


def load_entry_points() -> None:
    """Import every module declared under the ``sr_toolkit.plugins`` entry-point group, once."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for entry_point in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=str):
        distribution = _entry_point_modules()[entry_point.module]
        try:
            _import_as(distribution, entry_point.load)
        except SrToolkitError:
            raise
        except Exception as exc:
            _loaded = False
            raise PluginError(
                f"plugin '{entry_point.name}' of {distribution} ({entry_point.value}) failed to "
                f"import: {type(exc).__name__}: {exc}"
            ) from exc


def import_plugins(specs: Iterable[str]) -> None:
    """Import plugin modules a recipe lists: module names (``my_pkg.plugin``) or ``.py`` paths.

    A resolved recipe holds file plugins as absolute paths (see :func:`plugin_file`); a relative
    path, as in model files written before that, is looked up in the working directory.
    """
    load_entry_points()
    for spec in specs:
        if is_plugin_file(spec):
            _import_file(plugin_file(spec))
        else:
            try:
                _import_as(spec, functools.partial(importlib.import_module, spec))
            except ModuleNotFoundError as exc:
                raise PluginError(f"plugins: cannot import module '{spec}': {exc}") from exc


def is_plugin_file(spec: str) -> bool:
    """Whether a ``plugins:`` entry names a file (``.py`` or a path) rather than a module."""
    return spec.endswith(".py") or "/" in spec or "\\" in spec


def plugin_file(spec: str, base_dir: Path | None = None) -> Path:
    """The absolute path of a file plugin: ``spec`` itself if absolute, else next to ``base_dir``
    (the recipe's folder) or in the working directory. Raises PluginError naming what was tried."""
    candidates = [Path(spec)] if Path(spec).is_absolute() else [Path.cwd() / spec]
    if base_dir is not None and not Path(spec).is_absolute():
        candidates.insert(0, base_dir / spec)
    path = next((p.resolve() for p in candidates if p.is_file()), None)
    if path is None:
        tried = ", ".join(str(p) for p in candidates)
        raise PluginError(f"plugins: no file '{spec}' (looked for {tried})")
    return path


def _import_file(path: Path) -> None:
    module_name = f"sr_toolkit_local_plugin_{path.stem}_{abs(hash(str(path))):x}"
    if module_name in sys.modules:
        return
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        _import_as(str(path), functools.partial(module_spec.loader.exec_module, module))
    except SrToolkitError:
        del sys.modules[module_name]
        raise
    except Exception as exc:
        del sys.modules[module_name]
        raise PluginError(f"plugins: {path} failed to import: {type(exc).__name__}: {exc}") from exc
