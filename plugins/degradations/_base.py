"""The base every degradation shares: input checks and a repr that shows the arguments."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Generator, Tensor


def _show(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return repr(value[0])  # a range of one number
    if isinstance(value, tuple):
        return repr(list(value))
    return repr(value)


class Degradation:
    """A callable ``deg(x, generator=None)`` that degrades a batch (N, C, H, W) of images in [0, 1].

    Subclasses implement :meth:`apply` and keep their arguments as public attributes (ranges as
    (low, high) tuples), which is what the repr shows.
    """

    def __call__(self, x: Tensor, generator: Optional[Generator] = None) -> Tensor:
        if x.dim() != 4 or not torch.is_floating_point(x):
            raise ValueError(
                f"{type(self).__name__} expects a float batch (N, C, H, W), got {x.dtype} {tuple(x.shape)}"
            )
        return self.apply(x, generator)

    def apply(self, x: Tensor, generator: Optional[Generator]) -> Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        arguments = ", ".join(f"{name}={_show(value)}" for name, value in vars(self).items()
                              if not name.startswith("_"))
        return f"{type(self).__name__}({arguments})"
