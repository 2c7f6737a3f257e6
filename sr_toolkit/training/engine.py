"""The training engine: one loop on Hugging Face Accelerate, driven by a resolved recipe.

Accelerate owns devices, mixed precision and distribution; this module owns the recipe's
semantics: deterministic data draws, degradations on the device, checkpoints that resume
bit-exactly, a wall-clock budget, validation against the baseline, and clean stops.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from accelerate.utils import parse_flag_from_env, set_seed
from rich.console import Console
from torch.optim.swa_utils import AveragedModel

from sr_toolkit.core import checkpoint
from sr_toolkit.core.errors import SrToolkitError, TrainingDiverged
from sr_toolkit.core.model_file import model_spec, save_model
from sr_toolkit.core.precision import choose_precision
from sr_toolkit.core.registry import DATASETS, MODELS
from sr_toolkit.core.threads import configure_threads
from sr_toolkit.data.batches import DrawSampler, training_batches
from sr_toolkit.data.degrade import build_pipeline
from sr_toolkit.training.display import TrainingDisplay, format_seconds, validation_line
from sr_toolkit.training.ema import ema_model
from sr_toolkit.training.gan import GanParts
from sr_toolkit.training.losses import WeightedLoss
from sr_toolkit.training.nonfinite import GRADIENTS, NonFiniteWatch, describe
from sr_toolkit.training.optimizers import build_optimizer
from sr_toolkit.training.plots import plot_curves
from sr_toolkit.training.resume import Counters, check_resumable, checkpoint_to_resume, saved_progress
from sr_toolkit.training.run_folder import RunFolder
from sr_toolkit.training.schedule import RunProgress, lr_factor, parse_duration
from sr_toolkit.training.starting_weights import init_source, starting_weights
from sr_toolkit.training.stop import StopRequested, StopSignal
from sr_toolkit.training.updates import Updates
from sr_toolkit.training.validation import ValidationResult, validate

log = logging.getLogger("sr_toolkit")


def tensorboard_installed() -> bool:
    """Whether Accelerate's TensorBoard tracker has a writer to use (tensorboard or tensorboardX)."""
    return any(importlib.util.find_spec(name) is not None for name in ("tensorboard", "tensorboardX"))


def use_cpu() -> bool:
    """Whether to run on the CPU: asked for with ACCELERATE_USE_CPU=1, or several processes were
    launched on a machine without CUDA (they then train together over gloo, not each alone)."""
    several = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return parse_flag_from_env("ACCELERATE_USE_CPU") or (several and not torch.cuda.is_available())


class Trainer:
    """Builds everything a recipe names and runs the training loop (see :meth:`fit`)."""

    def __init__(self, recipe: dict[str, Any], resume: str | bool = False) -> None:
        self.recipe = recipe
        self.train_cfg = recipe["train"]
        self.folder = RunFolder(recipe["output_dir"])
        if self.train_cfg["tensorboard"] and not tensorboard_installed():
            raise SrToolkitError(
                "train.tensorboard: true needs TensorBoard's writer: pip install tensorboard "
                "(or set train.tensorboard: false)"
            )
        threads = configure_threads()
        cpu = use_cpu()
        self.precision = choose_precision(self.train_cfg["mixed_precision"], PartialState(cpu=cpu).device)
        AcceleratorState._reset_state()  # each run sets its own numerics, also a second run in one process
        self.accelerator = Accelerator(
            cpu=cpu,
            mixed_precision=self.precision.mixed_precision,
            gradient_accumulation_steps=self.train_cfg["grad_accum"],
            log_with="tensorboard" if self.train_cfg["tensorboard"] else None,
            project_dir=str(self.folder.root),
        )
        self.main = self.accelerator.is_main_process
        self.device = self.accelerator.device
        self.console = Console()
        if self.main and self.device.type == "cpu":
            log.info("%s", threads)
        # everything that can fail on bad input comes before the run folder is touched
        self.degrade = build_pipeline(recipe["degradation"])
        resume_path = checkpoint_to_resume(resume, self.folder)
        start_from = init_source(recipe) if resume_path is None else None  # a resume holds its weights
        data = recipe["data"]
        with self.accelerator.main_process_first():  # the main process scans; the others read its index
            self.train_set = DATASETS.build(data["train"], where="data.train")
            self.val_set = DATASETS.build(data["val"], where="data.val") if data["val"] else None
        if recipe["degradation"] and "input" in self.train_set[0] and self.main:
            log.info(
                "data.train gives its own inputs (%s): the degradation list is not applied to them",
                data["train"]["type"],
            )
        set_seed(recipe["seed"])
        self.model = MODELS.build_image_model(model_spec(recipe["model"]), where="model")
        if self.precision.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.criterion = WeightedLoss(recipe["loss"]).to(self.device)
        self.optimizer = build_optimizer(recipe["optimizer"], self.model)
        self.ema = self._ema()
        self.gan = GanParts.build(recipe, self.device) if recipe["gan"]["discriminator"] else None
        if self.gan is None:
            self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        else:
            self.model, self.gan.discriminator, self.optimizer, self.gan.optimizer = self.accelerator.prepare(
                self.model, self.gan.discriminator, self.optimizer, self.gan.optimizer
            )
        self.state = Counters()
        self.progress = RunProgress(self.train_cfg["max_steps"], parse_duration(self.train_cfg["max_time"]))
        self.watch = NonFiniteWatch(self.device)
        self.updates = Updates(
            self.accelerator, self.watch, self.train_cfg["on_nonfinite"], self.train_cfg["grad_clip"]
        )
        self.consecutive_skips = 0
        self.last_validation: tuple[int, ValidationResult | None] | None = None
        self.stopped_by: int | None = None  # the signal number that stopped the last fit, if one did
        if resume_path is not None:
            self._load(resume_path)
        elif start_from is not None:
            self._init_model(*start_from)
        if resume_path is None and self.main:
            archived = self.folder.archive_previous()
            if archived:
                log.info("moved the earlier run in %s to %s", self.folder.root, archived)
            self.folder.create(recipe)
        self.accelerator.wait_for_everyone()
        if self.train_cfg["tensorboard"]:
            self.accelerator.init_trackers(recipe["name"])

    # ----------------------------------------------------------------------------- set-up
    def _init_model(self, key: str, path: Path) -> None:
        """Start a fresh run from the file ``key`` names (never on resume: the checkpoint holds the weights)."""
        label, tensors = starting_weights(self.recipe, key, path)
        checkpoint.load_weights(self.accelerator.unwrap_model(self.model), tensors, label)
        if self.ema is not None:
            self.ema.module.load_state_dict(tensors)
        if self.main:
            log.info("model initialised from %s", label)

    def _ema(self) -> AveragedModel | None:
        decay = self.train_cfg["ema"]
        if decay is None:
            return None
        return ema_model(self.model, decay)

    @property
    def micro_batches(self) -> int:
        """Batches one optimizer step takes: ``grad_accum``, or ``gan.d_steps`` for a GAN."""
        return self.recipe["gan"]["d_steps"] if self.gan else self.train_cfg["grad_accum"]

    def _batches(self) -> Iterator[dict[str, Any]]:
        cfg = self.recipe["data"]
        start = self.state.step * self.micro_batches
        sampler = DrawSampler(cfg["batch_size"], start, self.accelerator.process_index, self.accelerator.num_processes)
        return training_batches(self.train_set, sampler, cfg["num_workers"], self.device)

    # ---------------------------------------------------------------------------- the loop
    def fit(self) -> ValidationResult | None:
        """Train until ``max_steps``, the time budget or a stop signal; save; then validate.

        SIGINT and SIGTERM are handled from the first step to the exit. The first asks the loop to
        stop, or drops a validation in progress; the trained state (checkpoint and model file) is
        written right after the last step, before the final validation. A second signal stops at
        once; files are written atomically, so none is torn.
        """
        cfg = self.train_cfg
        with StopSignal() as stop:
            self._announce_limits()
            batches = self._batches()
            started = time.perf_counter() - self.state.elapsed  # the clock goes on across resumes
            self.model.train()
            with TrainingDisplay(self.console, self.main, cfg["max_steps"], self.state.step) as display:
                pace = Pace(self.state.step, time.perf_counter())
                while self.state.step < cfg["max_steps"]:
                    elapsed = time.perf_counter() - started
                    if self._time_to_stop(stop, elapsed):
                        self.state.elapsed = elapsed  # validations since the last step count too
                        break
                    lr_scale = self._set_learning_rates(elapsed)
                    loss, parts = self._optimizer_step(batches)
                    self.state.step += 1
                    self.state.elapsed = time.perf_counter() - started
                    if self.state.step % cfg["log_every"] == 0 or self.state.step == cfg["max_steps"]:
                        self._log_step(loss, parts, lr_scale, display, pace)
                    display.advance()
                    if self.state.step % cfg["checkpoint_every"] == 0:
                        self._save_step_checkpoint()
                    if self.val_set is not None and self.state.step % cfg["val_every"] == 0:
                        self._validate_in_training(stop, display)
                display.finish(self.state.step)
            # stop the DataLoader's workers now, before validation: matplotlib's parser keeps exceptions
            # whose tracebacks hold this frame, which would keep them until a garbage collection (10 s)
            del batches
            self._check_finite()
            if self.main:
                self._log_stop_reason(stop, pace.first_step)
            result = self._finish(stop)
        self.stopped_by = stop.signum
        return result

    def _announce_limits(self) -> None:
        cfg = self.train_cfg
        if self.main:
            log.info(
                "precision: %s%s (%s)",
                self.precision.mixed_precision,
                " + channels_last" if self.precision.channels_last else "",
                self.precision.reason,
            )
            log.info(
                "training until step %d (train.max_steps)%s",
                cfg["max_steps"],
                f" or {cfg['max_time']} of training (train.max_time), whichever comes first"
                if self.progress.budget
                else "",
            )

    def _time_to_stop(self, stop: StopSignal, elapsed: float) -> bool:
        """Whether a stop signal came, or the next step would start past the time budget (keeping the
        last validation's time free for the final one)."""
        budget = self.progress.budget
        return bool(stop.requested) or bool(budget and elapsed + self.state.val_seconds >= budget)

    def _set_learning_rates(self, elapsed: float) -> float:
        """Set every optimizer's rate for the coming step from the schedule; return the schedule's factor."""
        factor = lr_factor(self.recipe["scheduler"], self.state.step, self.progress(self.state.step, elapsed))
        for optimizer, base_lr in self._base_rates():
            for group in optimizer.param_groups:
                group["lr"] = base_lr * factor
        return factor

    def _base_rates(self) -> list[tuple[torch.optim.Optimizer, float]]:
        """Each optimizer with its recipe's rate (param_groups hold the last scaled rate after a resume)."""
        rates = [(self.optimizer, self.recipe["optimizer"]["lr"])]
        if self.gan is not None:
            rates.append((self.gan.optimizer, self.recipe["gan"]["optimizer"]["lr"]))
        return rates

    def _log_step(
        self, loss: torch.Tensor, parts: dict[str, torch.Tensor], lr_scale: float, display: TrainingDisplay, pace: Pace
    ) -> None:
        """Log the step's losses and rate (a record, TensorBoard, the display's line and estimate)."""
        cfg, step = self.train_cfg, self.state.step
        self._check_finite()
        record = {
            "step": step,
            "loss": loss.item(),
            "lr": self.recipe["optimizer"]["lr"] * lr_scale,
            "time": round(self.state.elapsed, 3),
        }
        record.update({f"loss/{k}": v.item() for k, v in parts.items()})
        if cfg["on_nonfinite"] == "skip":
            record["skipped_steps"] = self.state.skipped
        self._log(record)
        rate = (step - pace.first_step) / (time.perf_counter() - pace.started)
        total, seconds_left = cfg["max_steps"], (cfg["max_steps"] - step) / rate
        budget = self.progress.budget
        if budget:  # the time budget ends the run first: show its steps and time left
            total = min(total, max(step, round(step * budget / max(self.state.elapsed, 1e-9))))
            seconds_left = min(seconds_left, budget - self.state.elapsed)
        display.logged(record, rate, total, seconds_left)

    def _save_step_checkpoint(self) -> None:
        self._check_finite()
        self._save_checkpoint(self.folder.checkpoint_path(self.state.step))
        self.folder.prune_checkpoints(self.train_cfg["keep_checkpoints"])

    def _validate_in_training(self, stop: StopSignal, display: TrainingDisplay) -> None:
        """Validate at a ``val_every`` step; its time is kept free at the end of a time budget."""
        tick = time.perf_counter()
        result = self._validate_unless_stopped(stop)
        if result is not None:
            display.validated(validation_line(self.state.step, result))
        self.state.val_seconds = time.perf_counter() - tick

    def _log_stop_reason(self, stop: StopSignal, first_step: int) -> None:
        """One line saying why training ended: a signal, max_steps, or the time budget."""
        cfg, step = self.train_cfg, self.state.step
        if stop.requested:
            log.warning("received %s at step %d: saving and stopping", stop.requested, step)
        elif step >= cfg["max_steps"]:
            log.info("reached train.max_steps (%d): finishing", cfg["max_steps"])
        elif step == first_step:
            log.warning(
                "the time budget (train.max_time: %s) was already used by the run resumed at step %d: "
                "nothing to train; give it more with --resume train.max_time=DURATION (more than %s)",
                cfg["max_time"],
                step,
                cfg["max_time"],
            )
        else:
            log.info("time budget of %s used at step %d: finishing", cfg["max_time"], step)

    # ---------------------------------------------------------------------------- a step
    def _optimizer_step(self, batches: Iterator[dict[str, Any]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One update of the model (and of the discriminator for a GAN), then the EMA. With
        ``on_nonfinite: skip``, a step where a watched value is NaN or inf makes no further update."""
        self.updates.start(self.state.step + 1)
        if self.gan is None:
            loss, parts = self._pixel_step(batches)
        else:
            pairs = (self._inputs(next(batches), micro) for micro in range(self.micro_batches))
            loss, parts = self.gan.update(
                self.state.step, pairs, self.model, self.criterion, self.optimizer, self.updates
            )
        if self.updates.skipped:
            self._count_skip()
        else:
            if self.consecutive_skips:
                self.watch.reset()
                self.consecutive_skips = 0
            if self.ema is not None:
                self.ema.update_parameters(self.accelerator.unwrap_model(self.model))
        return loss, parts

    def _pixel_step(self, batches: Iterator[dict[str, Any]]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``grad_accum`` micro-batches, degraded on the device, one optimizer step."""
        for micro in range(self.train_cfg["grad_accum"]):
            batch = next(batches)
            with self.accelerator.accumulate(self.model):
                inputs, target = self._inputs(batch, micro)
                output = self.model(inputs)  # prepared: runs under the recipe's autocast, returns fp32
                loss, parts = self.criterion(output, target)
                self.updates.backward(loss, parts)
                if self.accelerator.sync_gradients:
                    self.updates.apply(self.optimizer, self.model, GRADIENTS, clip=True)
        return loss.detach(), parts

    def _count_skip(self) -> None:
        """Count a skipped step, with a log line; stop after ``max_consecutive_skips`` in a row."""
        self.state.skipped += 1
        self.consecutive_skips += 1
        culprit = self.watch.culprit()
        assert culprit is not None, "a skipped update has a non-finite value"
        name, first = culprit
        if self.main:
            log.warning(
                "step %d: %s was NaN or inf: update skipped (%d skipped in all)",
                self.state.step + 1,
                describe(name),
                self.state.skipped,
            )
        limit = self.train_cfg["max_consecutive_skips"]
        if self.consecutive_skips >= limit:
            raise TrainingDiverged(
                f"{describe(name)} was NaN or inf in {limit} steps in a row (from step {first}, "
                f"train.max_consecutive_skips: {limit}); training stopped; {self._last_good()}; "
                "try a lower optimizer.lr, train.grad_clip, or mixed_precision: no"
            )

    def _inputs(self, batch: dict[str, Any], micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        target = batch["target"].to(self.device, non_blocking=True)
        if "input" in batch:
            inputs = batch["input"].to(self.device, non_blocking=True)
        else:
            draw = (self.state.step * self.micro_batches + micro) * self.accelerator.num_processes
            seed = self.recipe["seed"] * 1_000_003 + draw + self.accelerator.process_index
            inputs = self.degrade(target, torch.Generator(self.device).manual_seed(seed))
        if self.precision.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return inputs, target

    def _last_good(self) -> str:
        saved = self.folder.step_checkpoints()
        return f"the last good checkpoint is {saved[-1]}" if saved else "no checkpoint was written yet"

    def _check_finite(self) -> None:
        """With ``on_nonfinite: stop``, raise naming what turned NaN or inf first, and when."""
        if self.train_cfg["on_nonfinite"] != "stop":
            return
        found = self.watch.culprit()
        if found is None:
            return
        name, step = found
        raise TrainingDiverged(
            f"{describe(name)} became NaN or inf at step {step}; training stopped and {self._last_good()}; "
            "try a lower optimizer.lr, train.grad_clip, mixed_precision: no, or train.on_nonfinite: skip"
        )

    # --------------------------------------------------------------- validation and output
    def _eval_model(self) -> torch.nn.Module:
        return self.ema.module if self.ema is not None else self.accelerator.unwrap_model(self.model)

    def _validate_unless_stopped(self, stop: StopSignal) -> ValidationResult | None:
        """Validate (once per step), unless a stop signal came first or comes meanwhile."""
        if self.last_validation is not None and self.last_validation[0] == self.state.step:
            return self.last_validation[1]
        if stop.requested:
            return None
        try:
            with stop.abortable():
                result = self._validate_and_log()
        except StopRequested as exc:
            if self.main:
                log.warning("received %s during validation at step %d: validation dropped", exc, self.state.step)
            return None
        self.last_validation = (self.state.step, result)
        return result

    def _validate_and_log(self) -> ValidationResult | None:
        result = None
        if self.main and self.val_set is not None:
            result = validate(
                self._eval_model(),
                self.val_set,
                self.degrade,
                self.recipe,
                self.device,
                self.accelerator.autocast,
                self.folder.samples,
                self.state.step,
            )
            record = {"step": self.state.step, **result.record()}
            self._log(record)
            plot_curves(self.folder.records(), self.folder.curves)
            if record["val/psnr"] > self.state.best_psnr:
                self.state.best_psnr = record["val/psnr"]
                self._save_checkpoint(self.folder.best_checkpoint)
        self.accelerator.wait_for_everyone()
        return result

    def _log(self, record: dict[str, Any]) -> None:
        if self.main:
            self.folder.log(record)
            if self.train_cfg["tensorboard"]:
                self.accelerator.log(
                    {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))},
                    step=record["step"],
                )

    def _finish(self, stop: StopSignal) -> ValidationResult | None:
        """Save the trained state first (checkpoint and model file), then the final validation."""
        if self.main:
            final = self.folder.checkpoint_path(self.state.step)
            if not final.exists():
                self._save_checkpoint(final)
                self.folder.prune_checkpoints(self.train_cfg["keep_checkpoints"])
            save_model(self.folder.model, self._eval_model(), self.recipe)
        validated_before = self.last_validation is not None and self.last_validation[0] == self.state.step
        best_before = self.state.best_psnr
        result = self._validate_unless_stopped(stop) if self.val_set is not None else None
        if self.main:
            if self.state.best_psnr != best_before:  # the last checkpoint records the best score, for a resume
                self._save_checkpoint(self.folder.checkpoint_path(self.state.step))
            if result is not None:
                if not self.console.is_terminal and not validated_before:  # a line for batch logs, as in training
                    log.info("%s", validation_line(self.state.step, result))
                self.console.print(result.table(f"{self.recipe['name']}: validation after {self.state.step} steps"))
            log.info("run folder: %s", self.folder.root)
        self.accelerator.end_training()
        return result

    # --------------------------------------------------------------------- checkpoints
    def _checkpointed(self) -> tuple[dict[str, torch.nn.Module], dict[str, torch.optim.Optimizer]]:
        """The modules and optimizers a checkpoint holds, by the names it stores them under."""
        modules: dict[str, torch.nn.Module] = {"model": self.accelerator.unwrap_model(self.model)}
        optimizers: dict[str, torch.optim.Optimizer] = {"optimizer": self.optimizer}
        if self.ema is not None:
            modules["ema"] = self.ema
        if self.gan is not None:
            modules["discriminator"] = self.accelerator.unwrap_model(self.gan.discriminator)
            optimizers["d_optimizer"] = self.gan.optimizer
        return modules, optimizers

    def _save_checkpoint(self, path: Path) -> None:
        if not self.main:
            return
        meta = {
            **asdict(self.state),
            "progress": self.progress(self.state.step, self.state.elapsed),
            "recipe": self.recipe,
        }
        checkpoint.save_state(path, *self._checkpointed(), meta)

    def _load(self, path: Path) -> None:
        """Restore a checkpoint after checking it was made by this kind of run; writes nothing
        before every part has loaded."""
        tensors, meta = checkpoint.read(path)
        check_resumable(path, self.recipe, meta.get("recipe", {}))
        checkpoint.restore_state(tensors, meta, *self._checkpointed(), source=str(path))
        self.state = Counters.from_meta(meta)
        self._continue_schedule(meta["recipe"]["train"], saved_progress(meta))
        if self.main:
            self.folder.truncate_after(self.state.step)
            self.folder.save_recipe(self.recipe)  # the limits this run now goes on with
            if any(r.get("step") == self.state.step and "val/psnr" in r for r in self.folder.records()):
                self.last_validation = (self.state.step, None)  # validated at this step already
            log.info("resumed from %s at step %d", path, self.state.step)

    def _continue_schedule(self, before: dict[str, Any], progress: float) -> None:
        """After a resume with other limits, stretch the rest of the schedule over the new ones from
        ``progress``, where it stood (see :class:`~sr_toolkit.training.schedule.RunProgress`); say what the
        budget is now."""
        changed = (before["max_steps"], before["max_time"]) != (self.train_cfg["max_steps"], self.train_cfg["max_time"])
        if changed:
            self.progress.anchor = (progress, self.state.step, self.state.elapsed)
        if self.main and self.progress.budget:
            log.info(
                "time budget: %s of training in all (train.max_time, counted across resumes), %s used%s",
                self.train_cfg["max_time"],
                format_seconds(self.state.elapsed),
                f"; the schedule goes on from {progress:.0%} done" if changed else "",
            )


@dataclass(frozen=True)
class Pace:
    """Where one :meth:`Trainer.fit` loop began (its first step and clock), for its steps-per-second."""

    first_step: int
    started: float
