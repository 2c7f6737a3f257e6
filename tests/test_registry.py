"""The registry: decorator registration, building from mappings, and its errors."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import typing
from typing import Literal

import pytest
import torch

from sr_toolkit.__main__ import main
from sr_toolkit.core.errors import RegistryError
from sr_toolkit.core.registry import DATASETS, DEGRADATIONS, LOSSES, METRICS, MODELS, Registry
from sr_toolkit.core.typecheck import Range, describe
from sr_toolkit_plugins.models.edsr import EDSR


@pytest.fixture
def toy_registry(clean_registries: None) -> Registry:
    @MODELS.register("toy_net")
    class ToyNet(torch.nn.Module):
        """A toy network for the registry tests."""

        def __init__(
            self,
            channels: int = 8,
            scale: int = 2,
            mode: Literal["a", "b"] = "a",
            width: float | None = None,
            amount: Range = 0.5,
        ) -> None:
            super().__init__()
            if scale not in (2, 4):
                raise ValueError(f"scale must be 2 or 4, got {scale}")
            self.channels, self.amount = channels, amount
            self.conv = torch.nn.Conv2d(3, channels, 3)

    return MODELS


def test_build_passes_arguments(toy_registry: Registry) -> None:
    net = toy_registry.build({"type": "toy_net", "channels": 4, "amount": [0.1, 0.3]})
    assert net.channels == 4 and net.conv.out_channels == 4
    assert net.amount == [0.1, 0.3]
    assert toy_registry.get("toy_net").summary == "A toy network for the registry tests."


def test_unknown_name_lists_close_matches(toy_registry: Registry) -> None:
    with pytest.raises(RegistryError) as info:
        toy_registry.build({"type": "toy_nett"})
    message = str(info.value)
    assert "unknown model 'toy_nett'" in message and "toy_net" in message
    assert "sr-toolkit list models" in message and "\n" not in message


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"type": "toy_net", "chanels": 3},
            "model.chanels: model 'toy_net' has no argument 'chanels' (did you mean 'channels'?)",
        ),
        ({"type": "toy_net", "channels": "wide"}, "model.channels: model 'toy_net' expects int, got 'wide'"),
        ({"type": "toy_net", "channels": True}, "expects int, got True"),
        ({"type": "toy_net", "mode": "c"}, "model.mode: model 'toy_net' expects one of a|b, got 'c'"),
        ({"type": "toy_net", "amount": [0.1, "x"]}, "model.amount"),
        ({"type": "toy_net", "scale": 3}, "model 'toy_net': scale must be 2 or 4, got 3"),
        ({"channels": 3}, "expected a mapping with a 'type' key"),
    ],
)
def test_bad_arguments_name_component_and_argument(toy_registry: Registry, spec: dict, expected: str) -> None:
    with pytest.raises(RegistryError, match=None) as info:
        toy_registry.build(spec, where="model")
    assert expected in str(info.value)


def test_int_is_accepted_for_float_and_none_for_optional(toy_registry: Registry) -> None:
    assert toy_registry.build({"type": "toy_net", "width": 3}).channels == 8
    assert toy_registry.build({"type": "toy_net", "width": None}).channels == 8


def test_missing_required_argument(clean_registries: None) -> None:
    @LOSSES.register("needs_root")
    def needs_root(root: str) -> str:
        return root

    with pytest.raises(RegistryError, match=r"loss.root: loss 'needs_root' needs argument 'root'"):
        LOSSES.build({"type": "needs_root"}, where="loss")
    assert LOSSES.build({"type": "needs_root", "root": "x"}) == "x"


def test_duplicate_registration_names_both(toy_registry: Registry) -> None:
    with pytest.raises(RegistryError) as info:

        @MODELS.register("toy_net")
        def another_toy() -> None:
            """A second component under a taken name."""

    message = str(info.value)
    assert "registered twice" in message and "ToyNet" in message and "another_toy" in message


def test_first_party_plugins_are_registered_through_entry_points() -> None:
    for registry in (MODELS, LOSSES, DEGRADATIONS, DATASETS, METRICS):
        entries = [e for e in registry.entries() if e.factory.__module__.startswith("sr_toolkit_plugins.")]
        assert entries, f"no {registry.plural} registered"
        assert all(entry.plugin == "sr-toolkit" for entry in entries), entries
        assert all(entry.summary for entry in entries), [e.name for e in entries if not e.summary]


def test_cli_lists_components_with_plugin_and_summary() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sr_toolkit", "list", "models"], capture_output=True, text=True, check=True
    )
    lines = [line.split() for line in result.stdout.splitlines()[1:] if line.strip()]
    assert {"resnet_x4", "srresnet", "deconv", "conv_autoencoder"} <= {line[1] for line in lines}
    assert all(line[0] == "model" and line[2] == "sr-toolkit" for line in lines)
    everything = subprocess.run(
        [sys.executable, "-m", "sr_toolkit", "list"], capture_output=True, text=True, check=True
    ).stdout
    for kind in ("model", "loss", "degradation", "dataset", "metric"):
        assert f"\n{kind} " in everything


def table_rows(text: str) -> list[list[str]]:
    """The body rows of a rich table as printed: cells between the '│' borders, stripped."""
    return [[cell.strip() for cell in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def test_cli_shows_one_component_arguments_types_and_defaults(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["list", "models", "edsr"]) == 0
    printed = capsys.readouterr().out
    assert printed.splitlines()[0] == f"model 'edsr' (sr-toolkit): {inspect.getdoc(EDSR).splitlines()[0]}"
    hints = typing.get_type_hints(EDSR.__init__)
    signature = inspect.signature(EDSR).parameters.values()
    expected = [[p.name, describe(hints[p.name]), json.dumps(p.default)] for p in signature]
    assert table_rows(printed) == expected
    assert ["upsampler", "one of progressive|direct", '"progressive"'] in table_rows(printed)
    assert ["global_skip", "bool", "true"] in table_rows(printed)


def test_cli_marks_required_arguments(clean_registries: None, capsys, monkeypatch) -> None:
    @LOSSES.register("needs_root")
    def needs_root(root: str, width: float | None = None) -> str:
        """A loss with a required argument."""
        return root

    monkeypatch.setenv("COLUMNS", "200")
    assert main(["list", "losses", "needs_root"]) == 0
    assert table_rows(capsys.readouterr().out) == [["root", "str", "required"], ["width", "float or null", "null"]]


def test_cli_unknown_component_gives_one_line_with_close_matches() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sr_toolkit", "list", "models", "edsrr"], capture_output=True, text=True
    )
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr.startswith("error: unknown model 'edsrr' (close matches: edsr")
