"""``sr-toolkit COMMAND``: the dispatcher, the one exit-status rule, shipped recipes found by name, and
a wheel installed in a fresh virtual environment training a shipped recipe outside the clone."""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import shutil
import signal
import site
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import sr_toolkit
from sr_toolkit.__main__ import COMMANDS, main
from sr_toolkit.commands import train as train_command
from sr_toolkit.commands.exit_codes import CommandFailed, exit_status, stopped_by_signal
from sr_toolkit.config.shipped import find_recipe, shipped_folder, shipped_recipes
from sr_toolkit.core.errors import DataError, RecipeError, TrainingDiverged

ROOT = Path(__file__).resolve().parents[1]

CLONE_RECIPES = sorted(
    path.relative_to(ROOT / "recipes").with_suffix("").as_posix() for path in (ROOT / "recipes").rglob("*.yaml")
)
"""Every recipe of the clone, by name."""


# --- the dispatcher ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(COMMANDS))
def test_every_command_is_reached_with_its_own_usage(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([name, "--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: sr-toolkit {name} ")


def test_python_m_and_version_name_one_number() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sr_toolkit", "--version"], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0 and result.stdout == f"sr-toolkit {sr_toolkit.__version__}\n"
    assert importlib.metadata.version("sr-toolkit") == sr_toolkit.__version__


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["trian"],
            "unknown command 'trian' (did you mean train?); commands: train, eval, upscale, export, data, list",
        ),
        ([], "a command is needed: train, eval"),
    ],
)
def test_unknown_or_missing_command_is_a_usage_error(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err.splitlines()[-1]


def test_a_command_imports_only_its_own_module() -> None:
    modules = [module for module, _ in COMMANDS.values()]
    script = (
        f"import sys\nfrom sr_toolkit.__main__ import main\nassert main(['list', 'models']) == 0\n"
        f"print([m for m in {modules!r} + ['sr_toolkit.training.engine'] if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.splitlines()[-1] == "['sr_toolkit.commands.list']"


# --- one exit-status rule ----------------------------------------------------------------------


def raising(exc: BaseException) -> Callable[[], int]:
    @exit_status
    def command() -> int:
        raise exc

    return command


@pytest.mark.parametrize(
    ("exc", "status", "line"),
    [
        (
            RecipeError("recipe.yaml: train.max_stpes: unknown key"),
            2,
            "error: recipe.yaml: train.max_stpes: unknown key",
        ),
        (DataError("photos: folder not found"), 2, "error: photos: folder not found"),
        (TrainingDiverged("loss is NaN at step 3"), 1, "error: loss is NaN at step 3"),
        (CommandFailed("onnxruntime differs"), 1, "error: onnxruntime differs"),
        (KeyboardInterrupt(), 130, "interrupted: stopped at once"),
    ],
)
def test_errors_become_one_line_and_one_status(
    exc: BaseException, status: int, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert raising(exc)() == status
    assert capsys.readouterr().err == line + "\n"


def test_a_bug_is_not_hidden() -> None:
    with pytest.raises(ZeroDivisionError):
        raising(ZeroDivisionError("division by zero"))()


def test_signal_statuses_are_a_killed_process_s() -> None:
    assert stopped_by_signal(signal.SIGTERM) == 143 and stopped_by_signal(signal.SIGINT) == 130


@pytest.fixture
def restored_logging() -> Iterator[None]:
    """``train`` sets the root logger up on the stderr of the moment (here capsys's, closed after the
    test): put back the handlers it replaced, so later tests do not log to a closed stream."""
    handlers, level = logging.root.handlers[:], logging.root.level
    yield
    logging.root.handlers[:] = handlers
    logging.root.setLevel(level)


def test_train_interrupted_before_training_exits_130(
    restored_logging: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_command, "load_recipe", interrupt)
    assert main(["train", "resnet_x4"]) == 130
    assert capsys.readouterr().err.splitlines()[-1] == "interrupted: stopped at once"


# --- shipped recipes found by name -------------------------------------------------------------


def test_every_recipe_of_the_clone_is_shipped_by_its_name() -> None:
    assert sorted(shipped_recipes()) == CLONE_RECIPES
    assert shipped_folder().resolve() == (ROOT / "recipes").resolve()  # an editable install reads the clone


@pytest.mark.parametrize("argument", ["resnet_x4", "resnet_x4.yaml", "recipes/resnet_x4.yaml"])
def test_a_name_finds_the_shipped_recipe_from_any_folder(
    argument: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert find_recipe(argument) == shipped_folder() / "resnet_x4.yaml"


def test_a_file_wins_over_a_shipped_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "resnet_x4.yaml").write_text("base: elsewhere.yaml\n")
    assert find_recipe("resnet_x4.yaml") == Path("resnet_x4.yaml")


def test_an_unknown_recipe_is_one_line_with_close_names(
    restored_logging: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "report/resnt_x4"]) == 2
    error = capsys.readouterr().err
    assert len(error.splitlines()) == 1
    assert error.startswith(
        "error: recipe file not found: report/resnt_x4, nor a shipped recipe of that name "
        "(close matches: report/resnet_x4, "
    )


# --- a wheel in a fresh virtual environment ----------------------------------------------------

PACKAGED_FILES = ("pyproject.toml", "README.md")
PACKAGED_FOLDERS = ("sr_toolkit", "plugins", "recipes")
"""What pyproject.toml builds the distribution from (its readme and package-dir folders)."""


def venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment holding sr-toolkit installed from a wheel built from this clone.

    The wheel is built from a copy of what pyproject.toml packages, so no stale ``build/`` leaks in.
    The venv sees the test interpreter's site-packages (torch and the other dependencies) through a
    ``.pth`` file, after its own: those folders' ``.pth`` files are not run, so an editable install
    of this clone there does not load, and the venv's copy is the only ``sr_toolkit``.
    """
    root = tmp_path_factory.mktemp("wheel")
    source, dist, venv = root / "source", root / "dist", root / "venv"
    source.mkdir()
    for name in PACKAGED_FILES:
        shutil.copy2(ROOT / name, source / name)
    for folder in PACKAGED_FOLDERS:
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(dist),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = dist.glob("sr_toolkit-*.whl")
    assert wheel.name.startswith(f"sr_toolkit-{sr_toolkit.__version__}-")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_path("purelib", vars={"base": str(venv), "platbase": str(venv)}))
    (purelib / "outer_site_packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [
            str(venv_python(venv)),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--force-reinstall",
            "--no-index",
            str(wheel),
        ],
        check=True,
        capture_output=True,
        cwd=root,
    )
    return venv


def run_outside(venv: Path, cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """Run a command in ``cwd`` (no clone there) with the venv's executables, no PYTHONPATH."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["PATH"] = os.pathsep.join([str(venv / "bin"), env.get("PATH", "")])
    return subprocess.run(list(command), cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_wheel_install_is_its_own_copy_with_every_recipe(wheel_venv: Path, tmp_path: Path) -> None:
    script = (
        "import json, sr_toolkit, sr_toolkit_plugins\nfrom sr_toolkit.config.shipped import shipped_recipes\n"
        "print(json.dumps([sr_toolkit.__file__, sr_toolkit_plugins.__file__, sorted(shipped_recipes()),"
        " str(shipped_recipes()['resnet_x4'])]))"
    )
    result = run_outside(wheel_venv, tmp_path, str(venv_python(wheel_venv)), "-c", script)
    assert result.returncode == 0, result.stderr
    package, plugins, names, recipe = json.loads(result.stdout)
    assert all(Path(path).is_relative_to(wheel_venv) for path in (package, plugins, recipe))
    assert names == CLONE_RECIPES
    version = run_outside(wheel_venv, tmp_path, "sr-toolkit", "--version")
    assert version.stdout == f"sr-toolkit {sr_toolkit.__version__}\n"
    metadata = run_outside(
        wheel_venv,
        tmp_path,
        str(venv_python(wheel_venv)),
        "-c",
        "import importlib.metadata as m; print(m.version('sr-toolkit'))",
    )
    assert metadata.stdout == f"{sr_toolkit.__version__}\n"


def test_wheel_install_resolves_a_shipped_recipe_s_base(wheel_venv: Path, tmp_path: Path) -> None:
    result = run_outside(wheel_venv, tmp_path, "sr-toolkit", "train", "report/resnet_x4", "--print-recipe")
    assert result.returncode == 0, result.stderr
    assert "upsample: bilinear_ac" in result.stdout  # the report recipe's own
    assert "type: downscale" in result.stdout and "type: builtin" in result.stdout  # from its base


def test_wheel_install_trains_a_shipped_recipe_outside_the_clone(wheel_venv: Path, tmp_path: Path) -> None:
    result = run_outside(
        wheel_venv,
        tmp_path,
        "sr-toolkit",
        "train",
        "resnet_x4",
        "train.max_steps=2",
        "data.batch_size=2",
        "validation.max_images=1",
        "validation.samples=1",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs" / "resnet_x4" / "model.safetensors").is_file()


def test_list_shows_a_plugin_file_s_component_given_with_plugins(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plugin = tmp_path / "listed_plugin.py"
    plugin.write_text(
        "import torch\n"
        "from sr_toolkit.core.registry import MODELS\n\n\n"
        '@MODELS.register("listed_by_file")\n'
        "class Listed(torch.nn.Module):\n"
        '    """Registered by a plugin file."""\n\n'
        "    def __init__(self, scale: int = 2, width: int = 7) -> None:\n"
        "        super().__init__()\n"
    )
    assert main(["list", "models", "listed_by_file", "--plugins", str(plugin)]) == 0
    shown = capsys.readouterr().out
    assert "model 'listed_by_file'" in shown and "Registered by a plugin file." in shown and "width" in shown
