"""Argument checks shared by the first-party models; each raises ValueError naming the argument."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any


def require_choice(name: str, value: Any, choices: Collection[Any]) -> None:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        allowed = ", ".join(repr(choice) for choice in choices)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def require_positive(name: str, value: float) -> None:
    """Raise unless ``value`` is greater than zero."""
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


def require_at_least(name: str, value: float, minimum: float) -> None:
    """Raise unless ``value >= minimum``."""
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value!r}")
