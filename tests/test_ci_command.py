"""The README's test command is the one CI runs, so a contributor who copies it checks what CI checks."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_test_command_is_what_ci_runs() -> None:
    ci_lines = (ROOT / ".ci/run").read_text().splitlines()
    ci_command = [line for line in ci_lines if line.startswith("python -m pip install")]
    assert len(ci_command) == 1, ci_command
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"exactly what CI runs, in `\.ci/run`\):\n\n```bash\n(.*?)\n```", readme, re.S)
    assert block is not None, "README: no test command block after 'exactly what CI runs'"
    assert block.group(1) == ci_command[0]
    for check in ("ruff check", "ruff format --check", "mypy", "pytest"):
        assert check in ci_command[0]
