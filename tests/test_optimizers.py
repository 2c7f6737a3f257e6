"""Optimizer names: one table that the recipe schema and build_optimizer both read."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.errors import RecipeError
from sr_toolkit.training.optimizers import OPTIMIZERS, build_optimizer


@pytest.fixture
def recipe_path(tmp_path: Path) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(
        "scale: 4\nmodel: {type: resnet_x4, channels: 8, blocks: 1}\noptimizer: {lr: 0.01}\n"
        "degradation: [{type: downscale}]\n"
    )
    return path


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_every_name_in_the_table_is_a_recipe_optimizer_that_builds(recipe_path: Path, name: str) -> None:
    recipe = load_recipe(recipe_path, [f"optimizer.type={name}", f"gan.optimizer.type={name}"])
    section = recipe["optimizer"]
    assert recipe["gan"]["optimizer"]["type"] == name
    others = {key for kind in OPTIMIZERS.values() for key in kind.reads} - set(OPTIMIZERS[name].reads)
    assert set(OPTIMIZERS[name].reads) <= set(section) and not others & set(section)  # only the keys it reads
    model = torch.nn.Conv2d(3, 3, 3)
    optimizer = build_optimizer(section, model)
    assert type(optimizer) is OPTIMIZERS[name].cls and optimizer.param_groups[0]["lr"] == 0.01
    for key in OPTIMIZERS[name].reads:
        assert optimizer.param_groups[0][key] == (tuple(section[key]) if key == "betas" else section[key])


def test_a_name_not_in_the_table_is_refused_with_the_tables_names(recipe_path: Path) -> None:
    with pytest.raises(RecipeError, match="optimizer.type: expected one of " + r"\|".join(OPTIMIZERS)):
        load_recipe(recipe_path, ["optimizer.type=lion"])
