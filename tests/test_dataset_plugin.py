"""A third party's dataset plugin, written against the core's documented base, trains and resumes bit-exactly."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core import checkpoint
from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.patches import PatchDataset
from sr_toolkit.training.engine import Trainer

PLUGIN = '''
from typing import Optional

import torch

from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.patches import PatchDataset, Split


@DATASETS.register("ramps")
class Ramps(PatchDataset):
    """Three synthetic 40x48 images made once from a fixed generator: what a plugin's ``images`` returns."""

    def __init__(self, split: Split = "train", patch_size: Optional[int] = None, augment: bool = True,
                 seed: int = 0, scale: int = 1, held: bool = False) -> None:
        super().__init__(split, patch_size, augment, seed, scale)
        noise = torch.randint(0, 256, (3, 3, 40, 48), generator=torch.Generator().manual_seed(7))
        ramp = torch.linspace(0, 255, 48).expand(3, 40, 48)
        self._images = ((noise.float() + ramp) / 2).to(torch.uint8)
        self._held = held

    def __len__(self) -> int:
        return len(self._images)

    def name(self, image_index: int) -> str:
        return f"ramp{image_index}"

    @property
    def in_memory(self) -> bool:
        return self._held

    def images(self, image_index: int) -> dict[str, torch.Tensor]:
        return {"target": self._images[image_index]}
'''

RECIPE = """
task: upscale
scale: 4
plugins: [{plugin}]
model: {{type: resnet_x4, channels: 8, blocks: 1, upsample: bicubic, global_skip: true}}
degradation: [{{type: downscale}}]
data:
  train: {{type: ramps, patch_size: 16, held: {held}}}
  val: null
  batch_size: 3
loss: [{{type: l1}}]
optimizer: {{type: adam, lr: 1.0e-3}}
scheduler: {{type: constant}}  # a schedule of the step alone: a 2-step run is the first half of a 4-step one
train: {{max_steps: 4, log_every: 1, checkpoint_every: 2, mixed_precision: "no"}}
"""


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return trainer.accelerator.unwrap_model(trainer.model).state_dict()


@pytest.mark.parametrize("held", [False, True], ids=["data_loader", "held_on_device"])
def test_a_plugin_dataset_on_the_core_base_resumes_bit_exactly(
    tmp_path: Path, held: bool, clean_registries: None
) -> None:
    plugin = tmp_path / "ramps.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    recipe_path = tmp_path / "ramps.yaml"
    recipe_path.write_text(RECIPE.format(plugin=plugin, held=str(held).lower()))

    def run(folder: str, max_steps: int, resume: bool = False) -> Trainer:
        recipe = load_recipe(recipe_path, [f"output_dir={tmp_path / folder}", f"train.max_steps={max_steps}"])
        trainer = Trainer(recipe, resume=resume)
        trainer.fit()
        return trainer

    full = run("full", 4)
    assert isinstance(full.train_set, PatchDataset) and DATASETS.get("ramps").plugin.endswith("ramps.py")
    run("half", 2)
    resumed = run("half", 4, resume=True)
    assert resumed.state.step == 4
    a, b = weights(full), weights(resumed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    tensors, _ = checkpoint.read(tmp_path / "half" / "checkpoints" / "step_0000002.safetensors")
    at_step_2 = checkpoint.strip_prefix("model", tensors)
    assert any(not torch.equal(a[k], at_step_2[k]) for k in a)  # steps 3 and 4 trained: a resume, not a copy
