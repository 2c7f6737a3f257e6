"""``paired_folder``: low-resolution inputs and their targets in two folders, matched by file name."""

from __future__ import annotations

from pathlib import Path

from sr_toolkit.core.registry import DATASETS
from sr_toolkit.data.image_files import Cache, FileDataset, pair_folders, paired_sources
from sr_toolkit.data.patches import Split


@DATASETS.register("paired_folder")
class PairedFolder(FileDataset):
    """Inputs and targets from two folders (or one SelfExSR-style folder), matched by name.

    Files are matched by the rule of :mod:`sr_toolkit.data.pairing` at ``scale`` (``baby_LR.png`` and
    ``babyx4.png`` with ``baby_HR.png`` or ``baby.png``; paths are relative to each folder, so
    sub-folders must correspond). Each unmatched file is skipped with a warning naming it, the files
    that share an ambiguous name with one warning naming them all. An input must be its target's
    size divided by ``scale`` (after cutting the target to a multiple of ``scale``); the input crop
    is ``patch_size // scale`` at the matching position. Items are ``{"input", "target", "name"}``,
    the name being the target's path without suffix. Raises DataError when nothing matches.
    """

    gives_inputs = True  # its items carry an "input", so a recipe needs no degradation (sr_toolkit.config.rules)

    def __init__(
        self,
        input_root: str,
        target_root: str,
        split: Split = "train",
        patch_size: int | None = None,
        augment: bool = True,
        seed: int = 0,
        scale: int = 1,
        cache: Cache = "auto",
    ) -> None:
        input_folder, target_folder = Path(input_root).expanduser(), Path(target_root).expanduser()
        sources = paired_sources(pair_folders(input_folder, target_folder, scale), input_folder, target_folder)
        where = f"{input_folder} with {target_folder}"
        super().__init__(sources, where, split, patch_size, augment, seed, scale, cache)
