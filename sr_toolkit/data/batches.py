"""Where training batches come from: deterministic draws, cut on the device or by a DataLoader.

A training dataset item is a pure function of its draw number, so the stream of batches depends only
on the seed and the step, never on how it is produced. Datasets that keep their decoded images in
memory (:class:`HeldOnDevice`) are cut in the training step on the device itself: no worker processes,
no host-to-device copies of patches, nothing for the step to wait on. Others, or recipes that ask for
``data.num_workers``, go through a :class:`~torch.utils.data.DataLoader`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from itertools import count, islice
from typing import Any, Protocol, runtime_checkable

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

log = logging.getLogger("sr_toolkit")

Batch = dict[str, Any]


class DrawSampler(Sampler[int]):
    """Endless draw numbers for one process: micro-batch ``m`` of rank ``r`` gets the draws
    ``(m * world + r) * batch_size + [0, batch_size)``. A dataset item is a pure function of its
    draw number, so starting at micro-batch ``start`` resumes the exact data stream."""

    def __init__(self, batch_size: int, start: int = 0, rank: int = 0, world: int = 1) -> None:
        self.batch_size, self.start, self.rank, self.world = batch_size, start, rank, world

    def __iter__(self) -> Iterator[int]:
        for micro_batch in count(self.start):
            first = (micro_batch * self.world + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)


@runtime_checkable
class HeldOnDevice(Protocol):
    """A training dataset that can keep its decoded images on a device and cut batches there."""

    def hold_on(self, device: torch.device) -> bool:
        """Place the images on ``device``; False when it cannot (then nothing is held)."""

    def batch(self, draws: Sequence[int]) -> Batch:
        """The batch of these draw numbers, equal to collating ``dataset[draw]`` (names aside)."""


def training_batches(dataset: Dataset, sampler: DrawSampler, num_workers: int, device: torch.device) -> Iterator[Batch]:
    """Endless training batches of ``sampler``'s draws: cut on ``device`` when the dataset holds its
    images there (``num_workers`` 0), otherwise from a DataLoader with ``num_workers`` workers."""
    if num_workers == 0 and isinstance(dataset, HeldOnDevice) and dataset.hold_on(device):
        log.info("data: decoded images held on %s; crops cut in the training step", device)
        draws = iter(sampler)
        return (dataset.batch(list(islice(draws, sampler.batch_size))) for _ in count())
    log.info("data: DataLoader with %d worker process(es)", num_workers)
    return iter(
        DataLoader(
            dataset,
            batch_size=sampler.batch_size,
            sampler=sampler,
            num_workers=num_workers,
            pin_memory=device.type == "cuda",
            persistent_workers=num_workers > 0,
            prefetch_factor=4 if num_workers > 0 else None,
            generator=torch.Generator(),  # keeps the global RNG (dropout) untouched by the loader
        )
    )
