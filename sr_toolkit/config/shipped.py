"""The recipes shipped with sr-toolkit, found by name: ``resnet_x4``, ``report/resnet_x4``.

They are the clone's ``recipes/`` folder, installed as the package ``sr_toolkit.recipes``: an
editable install reads the clone's files, a wheel its own copy. A recipe's name is its path in that
folder without ``.yaml``; ``base:`` links between shipped recipes are relative paths, so they resolve
in either.
"""

from __future__ import annotations

import difflib
import importlib.resources
from pathlib import Path

from sr_toolkit.core.errors import RecipeError

SUFFIX = ".yaml"


def shipped_folder() -> Path:
    """The folder holding the shipped recipes."""
    return Path(str(importlib.resources.files("sr_toolkit.recipes")))


def shipped_recipes() -> dict[str, Path]:
    """Every shipped recipe, by name, in name order."""
    folder = shipped_folder()
    paths = sorted(folder.rglob(f"*{SUFFIX}"))
    return {path.relative_to(folder).with_suffix("").as_posix(): path for path in paths}


def find_recipe(argument: str | Path) -> Path:
    """The recipe file a command-line argument means: the file itself when there is one, else the
    shipped recipe it names (``.yaml`` and a leading ``recipes/`` may be written: the README's paths
    work outside a clone too).

    Raises :class:`~sr_toolkit.core.errors.RecipeError` naming close shipped names when neither exists.
    """
    path = Path(argument)
    return path if path.is_file() else shipped_recipe(argument)


def find_base(base: str, recipe: Path) -> Path:
    """The file a ``base:`` entry of ``recipe`` means: relative to ``recipe``'s folder, else the shipped
    recipe it names (so a user's recipe anywhere can start from ``base: resnet_x4``).

    Raises :class:`~sr_toolkit.core.errors.RecipeError` naming ``recipe`` and its ``base:`` when neither exists.
    """
    path = recipe.parent / base
    if path.is_file():
        return path
    try:
        return shipped_recipe(base)
    except RecipeError as exc:
        raise RecipeError(f"{recipe}: base: {exc}") from None


def shipped_recipe(name: str | Path) -> Path:
    """The shipped recipe ``name`` (``.yaml`` and a leading ``recipes/`` may be written); a RecipeError
    naming close shipped names when there is none."""
    recipes = shipped_recipes()
    key = Path(name).as_posix().removeprefix("recipes/").removesuffix(SUFFIX)
    if key in recipes:
        return recipes[key]
    close = difflib.get_close_matches(key, recipes, n=3)
    hint = f"close matches: {', '.join(close)}" if close else f"shipped: {', '.join(recipes)}"
    raise RecipeError(f"recipe file not found: {name}, nor a shipped recipe of that name ({hint})")
