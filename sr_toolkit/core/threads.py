"""CPU threads per training process: its share of the machine's cores unless the user chose.

``accelerate launch`` without a config exports ``OMP_NUM_THREADS=1`` when nobody asked for a
thread count, so a plain launch would train on one core (3.7 against 5.8 steps/s for the main job
on a 2-core machine). That value is taken as the launcher's default, not as a choice: a thread count
counts as chosen when ``OMP_NUM_THREADS`` is set outside a launcher, or to more than 1 (by
``--num_cpu_threads_per_process N`` or by the user).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

LAUNCHER_MARKERS = ("ACCELERATE_MIXED_PRECISION", "ACCELERATE_DYNAMO_BACKEND")
"""Variables ``accelerate launch`` exports to the processes it starts."""


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a SLURM or container limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def chosen_threads(env: Mapping[str, str]) -> int | None:
    """The thread count the user chose through ``OMP_NUM_THREADS``, or None (see the module notes)."""
    value = env.get("OMP_NUM_THREADS", "").strip()
    if not value.isdigit() or int(value) < 1:
        return None
    launched = any(marker in env for marker in LAUNCHER_MARKERS)
    return None if launched and int(value) == 1 else int(value)


def configure_threads(env: Mapping[str, str] | None = None, cores: int | None = None) -> str:
    """Set torch's intra-op threads for this process and return the log line saying how many and why.

    Without a chosen count: the usable cores divided by the processes on this machine
    (``LOCAL_WORLD_SIZE``, set by the launcher for several processes), at least 1.
    """
    env = os.environ if env is None else env
    cores = usable_cores() if cores is None else cores
    chosen = chosen_threads(env)
    if chosen is not None:
        torch.set_num_threads(chosen)
        return f"threads: {chosen} (OMP_NUM_THREADS)"
    local = max(1, int(env.get("LOCAL_WORLD_SIZE", "1")))
    share = max(1, cores // local)
    torch.set_num_threads(share)
    why = f"{cores} usable cores / {local} process{'es' if local > 1 else ''} on this machine"
    if env.get("OMP_NUM_THREADS", "").strip() == "1":
        why += "; accelerate launch's default OMP_NUM_THREADS=1 not applied"
    return f"threads: {share} per process ({why}; set OMP_NUM_THREADS=N to choose)"
