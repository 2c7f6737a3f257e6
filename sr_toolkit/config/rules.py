"""Rules between recipe keys, checked when a recipe is loaded, after every key has passed the schema.

Each rule takes the resolved recipe (and the raw one, before defaults, to tell a value the user wrote
from a default) and raises :class:`~sr_toolkit.core.errors.RecipeError` naming the key(s) at fault.
They read only the recipe and the registered components' classes (and at most one small metadata
file, see :func:`gives_inputs`), never an image, so ``tools/train.py RECIPE --print-recipe`` and
every command that loads a recipe catch these mistakes before any dataset is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

from sr_toolkit.config.recipe_schema import component_specs
from sr_toolkit.core.errors import RecipeError, SrToolkitError
from sr_toolkit.core.model_contract import is_discriminator
from sr_toolkit.core.registry import DATASETS, LOSSES, MODELS
from sr_toolkit.data.degrade import build_pipeline
from sr_toolkit.training.gan import AdversarialLoss

Recipe = Mapping[str, Any]


def check_scales(recipe: Recipe, raw: Recipe) -> None:
    """Refuse a component whose ``scale`` differs from the recipe's: the network, the data and the
    degradation must agree on one factor (an override of ``scale`` reaches every component that
    inherits it; one that spells another value would fail later, in validation). ``raw``, the
    recipe before defaults, tells a scale the user wrote from a component's own default."""
    written = {where: spec for where, _, spec in component_specs(raw)}
    for where, _, spec in component_specs(recipe):
        if not isinstance(spec, dict) or spec.get("scale", recipe["scale"]) == recipe["scale"]:
            continue
        if isinstance(written.get(where), dict) and "scale" in written[where]:
            raise RecipeError(
                f"{where}.scale: {spec['scale']} conflicts with the recipe's scale: "
                f"{recipe['scale']}; leave {where}.scale out (it inherits scale) or make them equal"
            )
        raise RecipeError(
            f"{where}: '{spec['type']}' works at scale {spec['scale']} by default, the recipe's "
            f"scale is {recipe['scale']}; set scale: {spec['scale']} at the top level"
        )


def is_adversarial(loss_type: str) -> bool:
    """Whether the loss registered as ``loss_type`` is an adversarial one: registered as a subclass of
    :class:`~sr_toolkit.training.gan.AdversarialLoss` (its two directions need a discriminator)."""
    factory = LOSSES.get(loss_type).factory
    return inspect.isclass(factory) and issubclass(factory, AdversarialLoss)


def check_loss_terms(recipe: Recipe, raw: Recipe) -> None:
    """An adversarial loss is no term of the ``loss:`` list: it belongs in ``gan.adversarial``."""
    for index, term in enumerate(recipe["loss"]):
        if is_adversarial(term["type"]):
            raise RecipeError(
                f"loss.{index}: '{term['type']}' is an adversarial loss; "
                "set it as gan.adversarial with gan.discriminator"
            )


def check_gan(recipe: Recipe, raw: Recipe) -> None:
    """With ``gan.discriminator`` set: ``gan.adversarial`` is an adversarial loss, and each update takes
    one batch (``gan.d_steps`` says how many the discriminator takes), so ``train.grad_accum`` is 1."""
    gan = recipe["gan"]
    if gan["discriminator"] is None:
        return
    if not is_adversarial(gan["adversarial"]["type"]):
        names = ", ".join(name for name in LOSSES.names() if is_adversarial(name))
        raise RecipeError(f"gan.adversarial: '{gan['adversarial']['type']}' is not an adversarial loss ({names})")
    if recipe["train"]["grad_accum"] != 1:
        raise RecipeError("train.grad_accum: GAN recipes take one batch per update (set it to 1)")


def gives_inputs(spec: Mapping[str, Any]) -> bool:
    """Whether the dataset a recipe's ``spec`` (``type`` and arguments) builds gives its own network
    inputs (paired data; its items then carry an ``"input"`` beside the ``"target"``): its class
    declares ``gives_inputs = True``, or, when that depends on the arguments, has a classmethod
    ``gives_inputs_for(spec)`` that decides (``prepared`` reads its set's metadata: the one rule that
    may read a file, and only when the recipe has no degradation)."""
    factory = DATASETS.get(spec["type"]).factory
    decide = getattr(factory, "gives_inputs_for", None)
    return bool(decide(spec)) if decide is not None else bool(getattr(factory, "gives_inputs", False))


def check_inputs(recipe: Recipe, raw: Recipe) -> None:
    """The network needs inputs: from ``degradation:``, or from a paired ``data.train`` dataset."""
    if not recipe["degradation"] and not gives_inputs(recipe["data"]["train"]):
        raise RecipeError(
            "degradation: the list is empty and data.train gives no inputs; add one, "
            "e.g. degradation: [{type: downscale}] for upscaling"
        )


def check_model_role(recipe: Recipe, raw: Recipe) -> None:
    """``model:`` is the image-to-image network; a discriminator (its class declares
    ``is_discriminator = True``) belongs under ``gan.discriminator``."""
    if is_discriminator(MODELS.get(recipe["model"]["type"]).factory):
        raise RecipeError(
            f"model: '{recipe['model']['type']}' is a discriminator, not an image-to-image model; "
            "it belongs under gan.discriminator"
        )


def check_degradations(recipe: Recipe, raw: Recipe) -> None:
    """Every ``degradation:`` step builds. The schema checks each step's own arguments; steps made of
    other steps (``realesrgan``, ``one_of``, ``random_order``, ``resize_to``) check what they hold only
    when built, which reads no file and draws nothing, so they are built here."""
    try:
        build_pipeline(recipe["degradation"])
    except (ValueError, SrToolkitError) as exc:
        raise RecipeError(str(exc)) from exc


def check_init_from(recipe: Recipe, raw: Recipe) -> None:
    """One file to start from: ``model.init_from`` or ``gan.init_from`` (the same generator), not both."""
    if recipe["model"].get("init_from") and recipe["gan"]["init_from"]:
        raise RecipeError("model.init_from and gan.init_from both name a file to start from; give one")


RULES: tuple[Callable[[Recipe, Recipe], None], ...] = (
    check_model_role,
    check_scales,
    check_loss_terms,
    check_gan,
    check_inputs,
    check_degradations,
    check_init_from,
)
"""Every rule, in the order :func:`check_rules` applies them."""


def check_rules(recipe: Recipe, raw: Recipe) -> None:
    """Apply every rule of :data:`RULES` to a recipe the schema resolved; the first broken one raises."""
    for rule in RULES:
        rule(recipe, raw)
