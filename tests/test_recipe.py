"""Recipes: inheritance, overrides, validation errors, and the printed resolved recipe."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from sr_toolkit.commands.train import main as train_main
from sr_toolkit.config.recipe import deep_merge, dump_recipe, load_recipe
from sr_toolkit.core.errors import RecipeError
from sr_toolkit.core.registry import DATASETS

ROOT = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def family(tmp_path: Path) -> Path:
    write(
        tmp_path / "base.yaml",
        """
        scale: 4
        model: {type: resnet_x4, channels: 64, blocks: 2}
        degradation: [{type: downscale}]
        optimizer: {lr: 1e-3, weight_decay: 1e-5}
        train: {max_steps: 100, log_every: 5}
        loss: [{type: mse}, {type: l1, weight: 100}]
    """,
    )
    return write(
        tmp_path / "child.yaml",
        """
        base: base.yaml
        model: {channels: 32}
        train: {max_steps: 50}
    """,
    )


def test_inheritance_deep_merges(family: Path) -> None:
    recipe = load_recipe(family)
    assert recipe["model"]["type"] == "resnet_x4"
    assert recipe["model"]["channels"] == 32 and recipe["model"]["blocks"] == 2
    assert recipe["train"]["max_steps"] == 50 and recipe["train"]["log_every"] == 5
    assert recipe["loss"] == [
        {"type": "mse", "weight": 1.0, "target": "plain"},
        {"type": "l1", "weight": 100, "target": "plain"},
    ]
    assert recipe["name"] == "child" and recipe["output_dir"] == str(Path("runs") / "child")


def test_yaml_floats_in_exponent_form(family: Path) -> None:
    optimizer = load_recipe(family)["optimizer"]
    assert optimizer["lr"] == pytest.approx(1e-3) and isinstance(optimizer["lr"], float)
    assert optimizer["weight_decay"] == pytest.approx(1e-5)


def test_defaults_are_filled_and_globals_inherited(family: Path) -> None:
    recipe = load_recipe(family)
    assert recipe["model"]["scale"] == 4  # the recipe's scale reaches components that take one
    assert recipe["model"]["dropout"] == pytest.approx(0.1)  # the component's own default
    assert recipe["data"]["train"]["type"] == "builtin"
    assert recipe["validation"]["crop_border"] == 4
    assert recipe["train"]["mixed_precision"] == "auto"


def test_yaml_1_2_booleans(family: Path) -> None:
    recipe = load_recipe(family, ["train.mixed_precision=no", "train.tensorboard=false"])
    assert recipe["train"]["mixed_precision"] == "no" and recipe["train"]["tensorboard"] is False
    with pytest.raises(RecipeError, match=r"train.tensorboard: expected bool, got 'yes'"):
        load_recipe(family, ["train.tensorboard=yes"])


def test_overrides_parse_yaml_scalars(family: Path) -> None:
    recipe = load_recipe(
        family,
        [
            "train.max_steps=20",
            "model.channels=16",
            "optimizer.lr=2e-4",
            "train.grad_clip=null",
            "loss.1.weight=10",
            "name=trial",
        ],
    )
    assert recipe["train"]["max_steps"] == 20 and recipe["model"]["channels"] == 16
    assert recipe["optimizer"]["lr"] == pytest.approx(2e-4)
    assert recipe["train"]["grad_clip"] is None and recipe["loss"][1]["weight"] == 10
    assert recipe["name"] == "trial"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["train.max_stpes=20"], "train.max_stpes: unknown key (did you mean 'max_steps'?)"),
        (["trian.max_steps=20"], "trian: unknown key (did you mean 'train'?)"),
        (["train.max_steps=many"], "train.max_steps: expected int, got 'many'"),
        (["train.mixed_precision=fp8"], "train.mixed_precision: expected one of auto|no|fp16|bf16"),
        (["model.chanels=8"], "model.chanels: model 'resnet_x4' has no argument 'chanels' (did you mean 'channels'?)"),
        (["model.channels=8.5"], "model.channels: model 'resnet_x4' expects int, got 8.5"),
        (["model.type=resnet_x5"], "unknown model 'resnet_x5' (close matches: resnet_x4"),
        (["loss.0.type=l2"], "unknown loss 'l2'"),
        (["train.max_steps"], "expected key.path=value"),
        (["loss.7.weight=1"], "no item 7 in a list of 2"),
    ],
)
def test_bad_keys_and_values_fail_naming_the_key(family: Path, overrides: list[str], message: str) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe(family, overrides)
    assert message in str(info.value)


def test_unknown_key_in_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path / "typo.yaml", "model: {type: resnet_x4}\ntrain: {val_evry: 5}\n")
    with pytest.raises(RecipeError, match=r"typo.yaml: train.val_evry: unknown key \(did you mean 'val_every'\?\)"):
        load_recipe(path)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match=r"recipe file not found: .*nope.yaml"):
        load_recipe(tmp_path / "nope.yaml")
    bad = write(tmp_path / "bad.yaml", "model: {type: resnet_x4\ntrain: [\n")
    with pytest.raises(RecipeError, match=r"bad.yaml, line \d+: invalid YAML"):
        load_recipe(bad)
    listing = write(tmp_path / "list.yaml", "- 1\n- 2\n")
    with pytest.raises(RecipeError, match="a recipe must be a mapping"):
        load_recipe(listing)
    write(tmp_path / "a.yaml", "base: b.yaml\n")
    write(tmp_path / "b.yaml", "base: a.yaml\n")
    with pytest.raises(RecipeError, match=r"inheritance cycle: a.yaml -> b.yaml -> a.yaml"):
        load_recipe(tmp_path / "a.yaml")
    missing_base = write(tmp_path / "orphan.yaml", "base: gone.yaml\n")
    with pytest.raises(RecipeError, match=r"orphan.yaml: base: recipe file not found: gone.yaml"):
        load_recipe(missing_base)


@pytest.mark.parametrize("base", ["resnet_x4", "resnet_x4.yaml", "recipes/resnet_x4.yaml"])
def test_a_recipe_anywhere_may_start_from_a_shipped_recipe_by_name(tmp_path: Path, base: str) -> None:
    mine = write(tmp_path / "mine.yaml", f"base: {base}\nname: mine\ntrain: {{max_steps: 7}}\n")
    shipped = load_recipe(ROOT / "recipes" / "resnet_x4.yaml")
    recipe = load_recipe(mine)
    assert recipe["train"]["max_steps"] == 7 and recipe["model"] == shipped["model"]


def test_deep_merge_replaces_lists_and_keeps_inputs() -> None:
    base = {"a": {"b": 1, "c": [1, 2]}, "d": 1}
    merged = deep_merge(base, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}
    assert base == {"a": {"b": 1, "c": [1, 2]}, "d": 1}


@pytest.mark.parametrize("recipe", sorted(p.relative_to(ROOT) for p in (ROOT / "recipes").rglob("*.yaml")))
def test_shipped_recipes_resolve(recipe: Path) -> None:
    resolved = load_recipe(ROOT / recipe)
    assert resolved["model"]["type"]


def test_print_recipe_round_trips(family: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), str(family), "train.max_steps=7", "--print-recipe"],
        capture_output=True,
        text=True,
        check=True,
    )
    printed = write(tmp_path / "printed.yaml", result.stdout)
    assert load_recipe(printed) == load_recipe(family, ["train.max_steps=7"])
    assert "scale" not in yaml.safe_load(result.stdout)["model"]  # inherited from the top level again


def write_saved_run_recipe(tmp_path: Path) -> Path:
    """A resolved x4 recipe as a run saves it, with scale-taking model, degradation and datasets."""
    source = write(
        tmp_path / "edsr.yaml",
        """
        scale: 4
        seed: 3
        model: {type: edsr, channels: 8, blocks: 1}
        degradation: [{type: downscale}]
        data: {train: {type: builtin, patch_size: 48}, val: {type: builtin}}
    """,
    )
    return write(tmp_path / "saved.yaml", dump_recipe(load_recipe(source)))


@pytest.mark.parametrize("override, key, value", [("scale=2", "scale", 2), ("seed=7", "seed", 7)])
def test_a_saved_recipe_takes_a_new_top_level_value_everywhere(
    tmp_path: Path, override: str, key: str, value: int
) -> None:
    recipe = load_recipe(write_saved_run_recipe(tmp_path), [override])
    holders = [recipe["model"], recipe["degradation"][0], recipe["data"]["train"], recipe["data"]["val"]]
    takes = [spec for spec in holders if key in spec]
    assert len(takes) >= (4 if key == "scale" else 2)
    assert recipe[key] == value and all(spec[key] == value for spec in takes)


def test_a_saved_recipe_with_a_new_name_and_scale_is_a_new_run(tmp_path: Path) -> None:
    saved = write_saved_run_recipe(tmp_path)
    recipe = load_recipe(saved, ["scale=2", "name=x2"])
    assert recipe["output_dir"] == str(Path("runs") / "x2")  # not the saved run's folder
    assert recipe["validation"]["crop_border"] == 2  # the border follows the scale
    kept = load_recipe(saved, ["validation.crop_border=6"])
    assert kept["validation"]["crop_border"] == 6 and kept["output_dir"] == str(Path("runs") / "edsr")
    elsewhere = write(tmp_path / "there.yaml", dump_recipe(load_recipe(saved, ["output_dir=/tmp/elsewhere"])))
    assert load_recipe(elsewhere, ["name=other"])["output_dir"] == "/tmp/elsewhere"  # a chosen folder stays


def test_a_component_scale_that_conflicts_is_refused_naming_both(tmp_path: Path) -> None:
    saved = write_saved_run_recipe(tmp_path)
    with pytest.raises(
        RecipeError,
        match=r"override model.scale=2: model.scale: 2 conflicts with the "
        r"recipe's scale: 4; leave model.scale out",
    ):
        load_recipe(saved, ["model.scale=2"])
    spelled = write(tmp_path / "spelled.yaml", "scale: 4\nmodel: {type: edsr, scale: 4}\n")
    with pytest.raises(RecipeError, match=r"spelled.yaml: model.scale: 4 conflicts with the recipe's scale: 2"):
        load_recipe(spelled, ["scale=2"])
    unscaled = write(tmp_path / "unscaled.yaml", "model: {type: edsr}\n")  # edsr defaults to x4, scale to 1
    with pytest.raises(
        RecipeError,
        match="model: 'edsr' works at scale 4 by default, the recipe's scale is 1; set scale: 4 at the top level",
    ):
        load_recipe(unscaled)


def test_a_validation_dataset_scores_whole_images(tmp_path: Path) -> None:
    folder = tmp_path / "val"
    folder.mkdir()
    Image.fromarray(np.full((37, 52, 3), 90, dtype=np.uint8)).save(folder / "flat.png")
    path = write(tmp_path / "r.yaml", "scale: 4\nmodel: {type: edsr}\ndegradation: [{type: downscale}]\n")
    recipe = load_recipe(path, [f"data.val={{type: image_folder, root: {folder}}}"])
    assert recipe["data"]["val"]["split"] == "val" and recipe["data"]["train"]["split"] == "train"
    dataset = DATASETS.build(recipe["data"]["val"], where="data.val")
    assert dataset[0]["target"].shape == (3, 36, 52)  # whole, cut to a multiple of the scale


def test_an_override_error_names_the_override(family: Path) -> None:
    with pytest.raises(RecipeError, match=r"^override train.max_steps=many: train.max_steps: expected int"):
        load_recipe(family, ["train.max_steps=many"])
    with pytest.raises(RecipeError, match=r"^override loss.0.type=l3: loss.0.type: unknown loss 'l3'"):
        load_recipe(family, ["loss.0.type=l3"])
    with pytest.raises(RecipeError, match=r"^override model=\{type: edsr, chanels: 3\}: model.chanels: "):
        load_recipe(family, ["model={type: edsr, chanels: 3}", "train.max_steps=3"])
    write(family, "base: base.yaml\ntrain: {max_stpes: 3}\n")
    with pytest.raises(RecipeError, match=r"child.yaml: train.max_stpes: unknown key"):  # the file's own error
        load_recipe(family, ["train.max_steps=3"])


def test_train_cli_reports_recipe_errors_in_one_line(family: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "train.py"), str(family), "train.max_stpes=3"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "did you mean 'max_steps'" in result.stderr


def test_a_child_recipe_switches_the_model_type_or_replaces_a_mapping(tmp_path: Path) -> None:
    write(
        tmp_path / "base.yaml",
        """
        scale: 4
        model: {type: resnet_x4, channels: 64, blocks: 2, upsample: bicubic}
        degradation: [{type: downscale}]
        optimizer: {type: adam, lr: 1e-3, betas: [0.8, 0.9]}
    """,
    )
    child = write(
        tmp_path / "child.yaml",
        """
        base: base.yaml
        model: {type: edsr, channels: 8}
        optimizer: !replace {type: sgd, lr: 0.1}
    """,
    )
    recipe = load_recipe(child)
    assert recipe["model"]["type"] == "edsr" and recipe["model"]["channels"] == 8
    assert "upsample" not in recipe["model"] and recipe["model"]["blocks"] != 2  # edsr's own default
    assert recipe["optimizer"] == {"type": "sgd", "lr": 0.1, "weight_decay": 0.0, "momentum": 0.9, "fused": True}
    same_type = write(tmp_path / "same.yaml", "base: base.yaml\nmodel: {channels: 32}\n")
    assert load_recipe(same_type)["model"]["upsample"] == "bicubic"  # same type: merged as before


def test_only_the_keys_the_chosen_types_read_are_kept(family: Path) -> None:
    adam = load_recipe(family, ["scheduler.type=cosine"])
    assert "betas" in adam["optimizer"] and "momentum" not in adam["optimizer"]
    assert "min_lr_ratio" in adam["scheduler"] and not {"step_size", "gamma"} & set(adam["scheduler"])
    sgd = load_recipe(family, ["optimizer.type=sgd", "scheduler.type=step"])
    assert "momentum" in sgd["optimizer"] and "betas" not in sgd["optimizer"]
    assert {"step_size", "gamma"} <= set(sgd["scheduler"]) and "min_lr_ratio" not in sgd["scheduler"]


def test_file_plugins_are_saved_as_absolute_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_registries: None
) -> None:
    folder = tmp_path / "project"
    folder.mkdir()
    write(
        folder / "my_loss.py",
        """
        import torch
        from sr_toolkit.core.registry import LOSSES

        @LOSSES.register("my_l1")
        class MyL1(torch.nn.Module):
            def forward(self, output, target):
                return (output - target).abs().mean()
    """,
    )
    recipe_path = write(
        folder / "r.yaml",
        "scale: 4\nplugins: [my_loss.py]\nmodel: {type: edsr}\nloss: [{type: my_l1}]\n"
        "degradation: [{type: downscale}]\n",
    )
    monkeypatch.chdir(tmp_path)  # another working directory than the recipe's
    recipe = load_recipe(recipe_path)
    assert recipe["plugins"] == [str((folder / "my_loss.py").resolve())]
    assert yaml.safe_load(dump_recipe(recipe))["plugins"] == recipe["plugins"]


def test_the_esrgan_chain_fits_together() -> None:
    """The README's ESRGAN-style chain: the PSNR recipe trains exactly the generator the GAN recipe
    starts from (gan.init_from refuses any other spec)."""
    psnr = load_recipe(ROOT / "recipes" / "esrgan_lite_psnr_x4.yaml")
    gan = load_recipe(ROOT / "recipes" / "esrgan_lite_x4.yaml")
    assert psnr["model"] == gan["model"] and psnr["model"]["batch_norm"] is False
    assert psnr["gan"]["discriminator"] is None and gan["gan"]["discriminator"]["type"] == "vgg_discriminator"


RULES_BETWEEN_KEYS = [
    (
        ["gan.discriminator={type: vgg_discriminator}", "train.grad_accum=2"],
        "train.grad_accum: GAN recipes take one batch per update (set it to 1)",
    ),
    (
        ["loss=[{type: l1}, {type: hinge}]"],
        "loss.1: 'hinge' is an adversarial loss; set it as gan.adversarial with gan.discriminator",
    ),
    (
        ["gan.discriminator={type: vgg_discriminator}", "gan.adversarial={type: l1}"],
        "gan.adversarial: 'l1' is not an adversarial loss (hinge, lsgan, ragan, vanilla)",
    ),
    (
        ["degradation=[]"],
        (
            "degradation: the list is empty and data.train gives no inputs; add one, "
            "e.g. degradation: [{type: downscale}] for upscaling"
        ),
    ),
    (["loss=[]"], "loss: expected a non-empty list of loss specs, got []"),
    (["model.scale=2"], "model.scale: 2 conflicts with the recipe's scale: 4"),
    (
        ["model=!replace {type: vgg_discriminator}"],
        "model: 'vgg_discriminator' is a discriminator, not an image-to-image model; "
        "it belongs under gan.discriminator",
    ),
]


@pytest.mark.parametrize(("overrides", "message"), RULES_BETWEEN_KEYS)
def test_rules_between_keys_are_checked_when_the_recipe_is_loaded(
    family: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe(family, overrides)
    assert message in str(info.value) and str(info.value).startswith("override ")


@pytest.mark.parametrize(("overrides", "message"), RULES_BETWEEN_KEYS)
def test_print_recipe_and_train_refuse_a_broken_rule_before_any_work(
    family: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str], message: str
) -> None:
    run = tmp_path / "run"
    for extra in (["--print-recipe"], []):
        assert train_main([str(family), f"output_dir={run}", *overrides, *extra]) == 2
        captured = capsys.readouterr()
        assert captured.out == "" and captured.err.startswith("error: override ") and message in captured.err
    assert not run.exists()


def test_paired_training_data_needs_no_degradation_and_is_not_read_on_load(family: Path, tmp_path: Path) -> None:
    paired = f"{{type: paired_folder, input_root: {tmp_path / 'no_lr'}, target_root: {tmp_path / 'no_hr'}}}"
    recipe = load_recipe(family, ["degradation=[]", f"data.train={paired}"])  # the folders do not exist
    assert recipe["degradation"] == [] and recipe["data"]["train"]["type"] == "paired_folder"
