"""Third-party plugins: a pip-installed distribution's entry point, and a recipe's plugins list."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sr_toolkit.config.recipe import load_recipe
from sr_toolkit.core.errors import PluginError, RecipeError
from sr_toolkit.core.registry import MODELS

PLUGIN_MODULE = '''
import torch
from sr_toolkit.core.registry import MODELS


@MODELS.register("third_party_net")
class ThirdPartyNet(torch.nn.Module):
    """A network shipped by another distribution."""

    def __init__(self, channels: int = 4) -> None:
        super().__init__()
        self.body = torch.nn.Conv2d(3, channels, 3, padding=1)
'''

PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "sr-toy-plugin"
version = "0.0.1"

[project.entry-points."sr_toolkit.plugins"]
toy = "sr_toy_plugin.register"

[tool.setuptools]
packages = ["sr_toy_plugin"]
"""


@pytest.fixture(scope="module")
def installed_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build and install a throwaway plugin distribution into its own site folder."""
    root = tmp_path_factory.mktemp("plugin_dist")
    source = root / "src"
    (source / "sr_toy_plugin").mkdir(parents=True)
    (source / "sr_toy_plugin" / "__init__.py").write_text("")
    (source / "sr_toy_plugin" / "register.py").write_text(PLUGIN_MODULE)
    (source / "pyproject.toml").write_text(PYPROJECT)
    site = root / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(source),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    assert list(site.glob("sr_toy_plugin-0.0.1.dist-info/entry_points.txt"))
    return site


def run_with(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, check=True)


def test_installed_distribution_is_listed_and_built(installed_plugin: Path) -> None:
    listing = run_with(installed_plugin, "-m", "sr_toolkit", "list", "models").stdout
    row = next(line.split(None, 3) for line in listing.splitlines() if "third_party_net" in line)
    assert row == ["model", "third_party_net", "sr-toy-plugin", "A network shipped by another distribution."]
    built = run_with(
        installed_plugin,
        "-c",
        textwrap.dedent("""
        from sr_toolkit.core.registry import MODELS
        net = MODELS.build({"type": "third_party_net", "channels": 6})
        print(type(net).__module__, net.body.out_channels)
    """),
    ).stdout.split()
    assert built == ["sr_toy_plugin.register", "6"]


def test_without_the_distribution_the_name_is_unknown() -> None:
    assert "third_party_net" not in MODELS


def test_recipe_plugins_import_files_and_modules(tmp_path: Path, clean_registries: None) -> None:
    plugin_dir = tmp_path / "my_plugins"
    plugin_dir.mkdir()
    (plugin_dir / "local_net.py").write_text(PLUGIN_MODULE.replace("third_party_net", "local_file_net"))
    (tmp_path / "recipe.yaml").write_text(
        textwrap.dedent("""
        plugins: [my_plugins/local_net.py]
        model: {type: local_file_net, channels: 5}
        degradation: [{type: gaussian_noise}]
    """)
    )
    recipe = load_recipe(tmp_path / "recipe.yaml")
    assert recipe["model"] == {"type": "local_file_net", "channels": 5}
    entry = MODELS.get("local_file_net")
    assert entry.plugin.endswith("local_net.py")


def test_recipe_plugin_errors_name_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "missing_file.yaml").write_text("plugins: [nowhere/net.py]\nmodel: {type: resnet_x4}\n")
    with pytest.raises(PluginError, match=r"no file 'nowhere/net.py'"):
        load_recipe(tmp_path / "missing_file.yaml")
    (tmp_path / "missing_module.yaml").write_text("plugins: [no_such_module_xyz]\nmodel: {type: resnet_x4}\n")
    with pytest.raises(PluginError, match="cannot import module 'no_such_module_xyz'"):
        load_recipe(tmp_path / "missing_module.yaml")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "broken.yaml").write_text("plugins: [broken.py]\nmodel: {type: resnet_x4}\n")
    with pytest.raises(PluginError, match=r"broken.py failed to import: RuntimeError: boom"):
        load_recipe(tmp_path / "broken.yaml")
    (tmp_path / "bad_list.yaml").write_text("plugins: 3\n")
    with pytest.raises(RecipeError, match="plugins: expected a list"):
        load_recipe(tmp_path / "bad_list.yaml")
