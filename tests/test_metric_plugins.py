"""A metric registered by a third party's plugin file is usable by name in evaluation
(``--plugins FILE --metrics NAME``) and in training validation (``validation.metrics``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_engine import TINY_RECIPE, train
from test_evaluation import run_cli, saved, write_photos

from sr_toolkit.commands import eval as eval_cli
from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.errors import RecipeError
from sr_toolkit.training.validation import validation_metrics

GAP_PLUGIN = '''
import torch
from sr_toolkit.core.registry import METRICS
from sr_toolkit.evaluation import metrics
from sr_toolkit.evaluation.scoring import Metric


@METRICS.register("abs_gap")
class AbsGap(Metric):
    """Mean absolute difference on [0, 1] values, after the border crop."""

    label = "Gap{y} [0,1]"
    higher_is_better = False
    digits = 5

    def compute(self, output, target):
        pair = [metrics.shave(x.double(), self.crop_border) for x in (output, target)]
        if self.y_channel:
            pair = [metrics.rgb_to_y(x) for x in pair]
        return (pair[0] - pair[1]).abs().flatten(1).mean(dim=1)
'''


@pytest.fixture
def gap_plugin(tmp_path: Path, clean_registries: None) -> Path:
    path = tmp_path / "gap_metric.py"
    path.write_text(GAP_PLUGIN)
    return path


def test_a_plugin_metric_is_a_column_of_evaluation(tmp_path: Path, gap_plugin: Path) -> None:
    photos = write_photos(tmp_path / "hr", names=("coffee.png",))
    out = tmp_path / "out"
    results = run_cli(
        "--data", tmp_path / "hr", "--scale", 4, "--plugins", gap_plugin, "--metrics", "psnr", "abs_gap", "--out", out
    )
    settings = results["settings"]
    assert settings["metrics"] == ["psnr", "abs_gap"]
    assert settings["labels"] == {"psnr": "PSNR (dB)", "abs_gap": "Gap [0,1]"}
    assert settings["higher_is_better"] == {"psnr": True, "abs_gap": False}
    # the value is the gap between the saved bicubic output and the image, 4 px border cropped
    target = photos["coffee.png"].astype(np.float64)[:168, :220]  # modcropped to multiples of 4
    output = saved(out, "coffee.png", "bicubic").astype(np.float64)
    expected = np.abs(output - target)[4:-4, 4:-4].mean() / 255
    value = results["methods"]["bicubic"]["images"]["coffee.png"]["abs_gap"]
    assert value == pytest.approx(expected, rel=1e-6)  # the tensors hold the levels in float32
    psnr_only = run_cli("--data", tmp_path / "hr", "--scale", 4, "--no-images", "--out", tmp_path / "psnr")
    assert results["methods"]["bicubic"]["mean"]["psnr"] == psnr_only["methods"]["bicubic"]["mean"]["psnr"]
    csv_header = (out / "results.csv").read_text().splitlines()[0]
    assert csv_header == "method,image,psnr,abs_gap,inputs,seed"
    assert "Gap [0,1] ↓" in (out / "report.html").read_text()


def test_evaluation_names_an_unknown_metric_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    write_photos(tmp_path / "hr", names=("coffee.png",))
    code = eval_cli.main(
        ["--data", str(tmp_path / "hr"), "--scale", "4", "--metrics", "abs_gap", "--out", str(tmp_path / "out")]
    )
    error = capsys.readouterr().err
    assert code == 2 and error.count("\n") == 1 and "unknown metric 'abs_gap'" in error


def test_a_metric_that_declares_no_label_is_refused_in_one_line_before_any_work(
    tmp_path: Path, gap_plugin: Path, capsys: pytest.CaptureFixture
) -> None:
    plugin = tmp_path / "no_label.py"
    plugin.write_text(GAP_PLUGIN.replace("abs_gap", "no_label").replace('    label = "Gap{y} [0,1]"\n', ""))
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"plugins: [{plugin}]\n")
    with pytest.raises(RecipeError, match=r"validation.metrics: metric 'no_label' \(.*\) declares no label \(str\)"):
        load_recipe(recipe, ["validation.metrics=[psnr, no_label]"])
    write_photos(tmp_path / "hr", names=("coffee.png",))
    out = tmp_path / "out"
    argv = ["--data", str(tmp_path / "hr"), "--scale", "4", "--plugins", str(plugin), "--metrics", "no_label"]
    assert eval_cli.main([*argv, "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "declares no label (str)" in error and not out.exists()


def test_a_metric_with_no_direction_must_declare_a_positive_ideal(
    tmp_path: Path, clean_registries: None, capsys: pytest.CaptureFixture
) -> None:
    plugin = tmp_path / "no_way.py"
    plugin.write_text(
        GAP_PLUGIN.replace("abs_gap", "no_way").replace("higher_is_better = False", "higher_is_better = None")
    )
    write_photos(tmp_path / "hr", names=("coffee.png",))
    argv = ["--data", str(tmp_path / "hr"), "--scale", "4", "--plugins", str(plugin), "--metrics", "no_way"]
    assert eval_cli.main([*argv, "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "declares higher_is_better None but no positive ideal (got None)" in error


def test_a_plugin_metric_is_logged_by_validation(tmp_path: Path, gap_plugin: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE + f"output_dir: {tmp_path / 'run'}\nplugins: [{gap_plugin}]\n")
    train(recipe, "validation.metrics=[psnr, abs_gap]", "train.max_steps=2", "train.val_every=2")
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    (validation,) = [record for record in records if "val/psnr" in record]
    assert {"val/psnr", "val/abs_gap", "val/baseline_psnr", "val/baseline_abs_gap"} <= validation.keys()
    assert "val/ssim" not in validation
    assert 0 < validation["val/abs_gap"] < 1 and 0 < validation["val/baseline_abs_gap"] < 1


def test_validation_keeps_psnr_and_ssim_by_default_and_checks_the_names(tmp_path: Path, gap_plugin: Path) -> None:
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(TINY_RECIPE)
    assert load_recipe(recipe)["validation"]["metrics"] == ["psnr", "ssim"]
    with pytest.raises(RecipeError, match=r"validation.metrics: unknown metric 'abs_gap'; choose from .*lpips"):
        load_recipe(recipe, ["validation.metrics=[psnr, abs_gap]"])
    with pytest.raises(RecipeError, match=r"validation.metrics: must include 'psnr'"):
        load_recipe(recipe, ["validation.metrics=[ssim]"])
    assert load_recipe(recipe, [f"plugins=[{gap_plugin}]", "validation.metrics=[psnr, abs_gap]"])


def test_validation_leaves_out_lpips_without_weights_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def offline(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with caplog.at_level(logging.WARNING, logger="sr_toolkit"):
        columns = validation_metrics(False, 3, ("psnr", "lpips"))
        assert validation_metrics(False, 3, ("psnr", "lpips")) is columns  # built once
    assert [column.name for column in columns] == ["psnr"]
    (warning,) = caplog.messages
    assert warning.startswith("validation: lpips: column skipped: ") and "AlexNet" in warning
    assert "\n" not in warning
