"""The README's main job through ``accelerate launch`` and through ``python``: steps/s side by side.

Each command is the user's, run as a separate process with a fixed number of steps instead of the
time budget (no validation): ``accelerate launch tools/train.py recipes/resnet_x4.yaml`` and
``python tools/train.py recipes/resnet_x4.yaml``, plus ``OMP_NUM_THREADS=1 python ...``, which is what
the launcher gave the training process before each process took its share of the cores. Rounds
alternate the commands because these machines drift; speed is measured from the run's own log
between the first logged step and the last (start-up excluded), and the medians are compared.

    python bench/launch_threads.py [--steps 150] [--rounds 3] [key=value ...]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "resnet_x4.yaml"
FIRST_LOGGED = 10

COMMANDS = {
    "accelerate launch": ([sys.executable, "-m", "accelerate.commands.launch"], {}),
    "python": ([sys.executable], {}),
    "python, 1 thread (the launcher's default before)": ([sys.executable], {"OMP_NUM_THREADS": "1"}),
}


def steps_per_second(prefix: list[str], env: dict[str, str], steps: int, overrides: list[str]) -> tuple[float, str]:
    """Run one command to ``steps`` steps; its steps/s from metrics.jsonl and its ``threads:`` log line."""
    clean = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    with tempfile.TemporaryDirectory() as folder:
        result = subprocess.run(
            [
                *prefix,
                str(ROOT / "tools" / "train.py"),
                str(RECIPE),
                "train.max_time=null",
                f"train.max_steps={steps}",
                f"train.log_every={FIRST_LOGGED}",
                "train.val_every=1000000",
                "train.checkpoint_every=1000000",
                "data.val=null",
                f"output_dir={folder}",
                *overrides,
            ],
            capture_output=True,
            text=True,
            env={**clean, **env},
            check=False,
        )
        if result.returncode != 0:
            raise SystemExit(f"{' '.join(prefix)} failed:\n{result.stderr[-2000:]}")
        lines = (Path(folder) / "metrics.jsonl").read_text().splitlines()
        times = {r["step"]: r["time"] for r in map(json.loads, lines) if "loss" in r}
    threads = next((line.split("INFO ", 1)[-1] for line in result.stderr.splitlines() if "threads:" in line), "?")
    return (steps - FIRST_LOGGED) / (times[steps] - times[FIRST_LOGGED]), threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    speeds: dict[str, list[float]] = {name: [] for name in COMMANDS}
    said: dict[str, str] = {}
    for round_ in range(args.rounds):
        for name, (prefix, env) in COMMANDS.items():
            rate, said[name] = steps_per_second(prefix, env, args.steps, args.overrides)
            speeds[name].append(rate)
            print(f"round {round_ + 1}: {name}: {rate:.3f} steps/s", flush=True)
    medians = {name: statistics.median(values) for name, values in speeds.items()}
    reference = medians["python"]
    for name, median in medians.items():
        print(f"{name}: median {median:.3f} steps/s, {median / reference:.3f} x python; log: {said[name]}")


if __name__ == "__main__":
    main()
