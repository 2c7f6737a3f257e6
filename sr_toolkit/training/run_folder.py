"""The run folder: resolved recipe, ``metrics.jsonl``, samples, checkpoints and the model file."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from sr_toolkit.config.recipe import dump_recipe
from sr_toolkit.core.atomic import atomic_path

CHECKPOINT_PATTERN = re.compile(r"step_(\d+)\.safetensors")


class RunFolder:
    """Paths and small writers for one training run under ``output_dir``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.checkpoints = self.root / "checkpoints"
        self.samples = self.root / "samples"
        self.metrics = self.root / "metrics.jsonl"
        self.curves = self.root / "curves.png"
        self.model = self.root / "model.safetensors"
        self.recipe = self.root / "recipe.yaml"

    def archive_previous(self) -> Path | None:
        """Move an earlier run at this path aside (``<name>_archived_<time>``) so nothing is lost."""
        if not self.root.exists() or not any(self.root.iterdir()):
            return None
        stamp = time.strftime("%Y%m%d_%H%M%S")
        target = self.root.with_name(f"{self.root.name}_archived_{stamp}")
        self.root.rename(target)
        return target

    def create(self, recipe: dict[str, Any]) -> None:
        """Make the folders and write the resolved recipe."""
        for folder in (self.root, self.checkpoints, self.samples):
            folder.mkdir(parents=True, exist_ok=True)
        self.save_recipe(recipe)

    def save_recipe(self, recipe: dict[str, Any]) -> None:
        """Write the resolved recipe as ``recipe.yaml`` (atomically: a resume rewrites it)."""
        with atomic_path(self.recipe) as temporary:
            temporary.write_text(dump_recipe(recipe), encoding="utf-8")

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoints / f"step_{step:07d}.safetensors"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / "best.safetensors"

    def step_checkpoints(self) -> list[Path]:
        """Periodic checkpoints, oldest first."""
        found = [
            (int(match.group(1)), p)
            for p in self.checkpoints.glob("step_*.safetensors")
            if (match := CHECKPOINT_PATTERN.fullmatch(p.name))
        ]
        return [p for _, p in sorted(found, key=lambda pair: pair[0])]

    def prune_checkpoints(self, keep: int) -> None:
        """Delete all but the ``keep`` newest periodic checkpoints (``best`` is kept apart)."""
        for path in self.step_checkpoints()[:-keep] if keep > 0 else []:
            path.unlink(missing_ok=True)

    def log(self, record: dict[str, Any]) -> None:
        """Append one record to ``metrics.jsonl``."""
        with self.metrics.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        """Every record logged so far."""
        if not self.metrics.exists():
            return []
        lines = self.metrics.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def truncate_after(self, step: int) -> None:
        """Drop records logged after ``step`` (a resumed run logs those steps again)."""
        kept = [r for r in self.records() if r.get("step", 0) <= step]
        self.metrics.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
