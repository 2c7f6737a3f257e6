"""The recipe's JSON Schema (``sr-toolkit schema``): valid draft 2020-12, met by every shipped recipe,
failed by wrong types and unknown keys, and listing a plugin's components once it is imported."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from sr_toolkit.commands.schema import main
from sr_toolkit.config.json_schema import recipe_json_schema
from sr_toolkit.config.recipe import RecipeLoader, dump_recipe, load_recipe

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted(p.relative_to(ROOT) for p in (ROOT / "recipes").rglob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = recipe_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def problems(validator: jsonschema.Draft202012Validator, recipe: Any) -> list[str]:
    """Each validation error as ``key.path: message``."""
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(recipe)]


@pytest.mark.parametrize("recipe", SHIPPED)
def test_every_shipped_recipe_meets_the_schema_as_written_and_resolved(
    validator: jsonschema.Draft202012Validator, recipe: Path
) -> None:
    written = yaml.load((ROOT / recipe).read_text(), Loader=RecipeLoader)
    assert problems(validator, written) == []
    resolved = yaml.load(dump_recipe(load_recipe(ROOT / recipe)), Loader=RecipeLoader)  # as a run saves it
    assert problems(validator, resolved) == []


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("train: {max_stpes: 3}", "train", "'max_stpes' was unexpected"),
        ("trian: {max_steps: 3}", "", "'trian' was unexpected"),
        ("train: {max_steps: many}", "train.max_steps", "'many' is not of type 'integer'"),
        ("train: {max_steps: 0}", "train.max_steps", "0 is less than the minimum of 1"),
        ("train: {mixed_precision: fp8}", "train.mixed_precision", "'fp8' is not one of"),
        ("optimizer: {betas: [0.9]}", "optimizer.betas", r"\[0.9\] is too short"),
        ("model: {type: resnet_x5}", "model.type", "'resnet_x5' is not one of"),
        ("model: {type: resnet_x4, chanels: 8}", "model", "'chanels' was unexpected"),
        ("model: {type: resnet_x4, channels: 8.5}", "model.channels", "8.5 is not of type 'integer'"),
        ("loss: [{type: l1, weight: heavy}]", "loss.0.weight", "'heavy' is not of type 'number'"),
        ("loss: []", "loss", r"\[\] (should be non-empty|is too short)"),
        ("degradation: [{type: downscale, mode: nearest_ish}]", "degradation.0.mode", "'nearest_ish' is not one of"),
        ("data: {train: {type: builtin, patch_size: big}}", "data.train.patch_size", "'big' is not valid under any"),
        ("base: 3", "base", "3 is not valid under any"),
    ],
)
def test_a_wrong_type_or_unknown_key_fails_naming_it(
    validator: jsonschema.Draft202012Validator, text: str, where: str, message: str
) -> None:
    found = problems(validator, yaml.load(text, Loader=RecipeLoader))
    assert any(problem.startswith(f"{where}: ") and re.search(message, problem) for problem in found), found


def test_a_child_recipe_may_change_a_base_component_without_its_type(
    validator: jsonschema.Draft202012Validator,
) -> None:
    assert problems(validator, {"base": "resnet_x4.yaml", "model": {"channels": 32}, "loss": {"type": "l1"}}) == []


def test_the_command_prints_or_writes_the_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    printed = capsys.readouterr().out
    assert json.loads(printed) == recipe_json_schema()
    out = tmp_path / "schemas" / "recipe.schema.json"
    assert main(["--out", str(out)]) == 0
    assert out.read_text() == printed and capsys.readouterr().out == ""
    assert [p.name for p in out.parent.iterdir()] == ["recipe.schema.json"]  # no temporary left beside it
    result = subprocess.run(
        [sys.executable, "-m", "sr_toolkit.commands.schema"], capture_output=True, text=True, timeout=120, check=True
    )
    assert json.loads(result.stdout)["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_a_plugin_component_is_described_from_its_signature(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_registries: None
) -> None:
    plugin = tmp_path / "my_net.py"
    plugin.write_text(
        textwrap.dedent('''
        import torch
        from sr_toolkit.core.registry import MODELS

        @MODELS.register("schema_test_net")
        class SchemaTestNet(torch.nn.Module):
            """A plugin network."""

            def __init__(self, scale: int = 4, width: int = 16) -> None:
                super().__init__()
    ''')
    )
    assert main(["--plugins", str(plugin)]) == 0
    schema = json.loads(capsys.readouterr().out)
    model = schema["$defs"]["model"]
    assert "schema_test_net" in model["properties"]["type"]["enum"]
    case = next(c["then"] for c in model["allOf"] if c["if"]["properties"]["type"]["const"] == "schema_test_net")
    assert case["description"] == "A plugin network."
    assert case["properties"]["width"] == {"type": "integer", "default": 16}
    validator = jsonschema.Draft202012Validator(schema)
    assert problems(validator, {"model": {"type": "schema_test_net", "width": 8}}) == []
    assert problems(validator, {"model": {"type": "schema_test_net", "depth": 8}}) == [
        "model: Additional properties are not allowed ('depth' was unexpected)"
    ]


def test_a_missing_plugin_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--plugins", str(tmp_path / "gone.py")]) == 2
    assert capsys.readouterr().err.startswith("error: plugins: no file")
