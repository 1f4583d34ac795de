"""
What a training run reports as it goes, on rank 0: config.json once, a row in metrics.jsonl (and
wandb) and a console line for each evaluation, logged step, alarm, HellaSwag score and the plan
check, the run's pace (ms per iteration, tokens/s, MFU, elapsed time, ETA) and its last line.
The files' formats are fitgpt/runfiles.py's; the lines' wording fitgpt/formatting.py's.
"""

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fitgpt import flops
from fitgpt.alarms import Alarm, RunAlarms
from fitgpt.bpb import bits_per_byte
from fitgpt.formatting import duration, eval_line, hellaswag_line, step_line, warn
from fitgpt.runfiles import METRICS_FILE, MetricsLog, hellaswag_fields, write_run_config
from fitgpt.settings import TrainSettings
from fitgpt.startup import plan_check_lines
from fitgpt.wandb_run import WandbRun

if TYPE_CHECKING:  # only for the annotation: this module stays free of torch
    from fitgpt.checkpoint import Progress


class RunLog:
    """config.json, metrics.jsonl, the alarms and, with wandb_log, a wandb run with the same records
    and config (the iteration-0 evaluation included). Inactive (every call a no-op) on ranks other
    than 0. progress: where the run starts (a checkpoint.Progress; a resumed run's rows after its
    checkpoint are dropped)."""

    def __init__(self, s: TrainSettings, active: bool, config: dict, progress: "Progress"):
        self.active, self.wandb = active, None
        if not active:
            return
        resume_iter = progress.iter_num if s.init_from == "resume" else None
        self.file = MetricsLog(os.path.join(s.out_dir, METRICS_FILE), resume_iter)
        self.config, self.out_dir = config, s.out_dir
        write_run_config(s.out_dir, config)
        self.flops_per_token, self.train_tokens = config["flops_per_token"], config["dataset"]["train_tokens"]
        self.val_bytes = config["dataset"].get("val_bytes")  # None: bits per byte unknown
        self.alarms = RunAlarms(s, self.train_tokens, self.file.kept)
        if s.wandb_log:
            self.wandb = WandbRun(s.wandb_project, s.wandb_run_name, config)
        self.raise_alarms(self.alarms.start(progress.iter_num, progress.tokens_seen))

    @property
    def stop_reason(self) -> str | None:
        """Why the run should stop now (early_stop on a plateau), or None."""
        return self.alarms.stop_reason if self.active else None

    def write(self, record: dict) -> None:
        self.file.write(record)
        if self.wandb is not None:
            self.wandb.log(record)

    def raise_alarms(self, alarms: list[Alarm]) -> None:
        for alarm in alarms:
            print(alarm.line(), flush=True)
            self.write(alarm.record())

    def progress_fields(self, progress: "Progress") -> dict:
        return {
            "iter": progress.iter_num,
            "tokens": progress.tokens_seen,
            "flops": progress.tokens_seen * self.flops_per_token,
            "epoch": round(progress.tokens_seen / self.train_tokens, 4),
        }

    def evaluation(self, progress: "Progress", losses: dict, lr: float) -> None:
        """Print and log an evaluation on its own: the one before the first step (and eval_only's)."""
        if not self.active:
            return
        print(eval_line(progress.iter_num, losses, self.bpb(losses)), flush=True)
        row = {**self.progress_fields(progress), "lr": lr, "elapsed_s": round(progress.elapsed_s, 1)}
        row.update(self.eval_fields(losses))
        self.write(row)
        self.raise_alarms(self.alarms.update(row))

    def bpb(self, losses: dict) -> float | None:
        return bits_per_byte(losses["val"], self.val_bytes) if self.val_bytes else None

    def eval_fields(self, losses: dict) -> dict:
        """An evaluation's fields of a metrics.jsonl row: val_bpb too when the val text's bytes are known."""
        fields = {"val_loss": losses["val"], "train_eval_loss": losses["train"]}
        bpb = self.bpb(losses)
        return fields if bpb is None else {**fields, "val_bpb": bpb}

    def step(
        self, progress: "Progress", *, loss: float, lr: float, grad_norm: float, rates: dict, losses: dict
    ) -> None:
        """Log and print a training step: progress (a checkpoint.Progress), the mean loss, learning
        rate and gradient norm, the pace (Throughput.lap), and the evaluation losses when it was
        evaluated (their line first); then the alarms that first hold."""
        if not self.active:
            return
        if losses:
            print(eval_line(progress.iter_num, losses, self.bpb(losses)), flush=True)
        record = {
            **self.progress_fields(progress),
            "loss": loss,
            "lr": lr,
            **rates,
            "grad_norm": grad_norm,
            "skipped": progress.skipped_batches,
        }
        if losses:
            record.update(self.eval_fields(losses))
        self.write(record)
        print(step_line(record), flush=True)
        self.raise_alarms(self.alarms.update(record))

    def plan_check(self, progress: "Progress", check: dict) -> None:
        """Print the plan-against-measurement line once (startup.plan_check); keep it in
        metrics.jsonl and config.json."""
        if not self.active:
            return
        line, warning = plan_check_lines(check)
        print(line, flush=True)
        if warning:
            warn(warning)
        self.write(
            {**self.progress_fields(progress), **{f"plan_check_{k}": v for k, v in check.items() if k != "iter"}}
        )
        self.config["plan_check"] = check
        write_run_config(self.out_dir, self.config)

    def hellaswag(self, progress: "Progress", result: dict) -> None:
        """Print and log a HellaSwag result (fitgpt/hellaswag.py)."""
        if self.active:
            print(f"iter {progress.iter_num}: {hellaswag_line(result)}", flush=True)
            self.write({**self.progress_fields(progress), **hellaswag_fields(result)})

    def stopped(self, iter_num: int, out_dir: str) -> None:
        if self.active:
            print(
                f"stopped at iteration {iter_num}; resume with: python train.py --init_from=resume --out_dir={out_dir}",
                flush=True,
            )

    def summary(self, progress: "Progress", wall_seconds: float, checkpoint: str | None, finished: bool) -> None:
        """The end-of-run line: how far it came, the best val loss, the time, the checkpoint; and
        its row (finished: the run ended as planned, at max_iters or by early_stop, not a signal)."""
        if self.active:
            best_val = progress.best_val_loss if progress.best_val_loss < float("inf") else None
            self.write({**self.progress_fields(progress), "finished": finished, "best_val_loss": best_val})
            best = f"best val loss {progress.best_val_loss:.4f}" if progress.best_val_loss < float("inf") else "no eval"
            saved = f"checkpoint {checkpoint}" if checkpoint else "no checkpoint written"
            print(
                f"done: {progress.iter_num:,} iterations, {progress.tokens_seen:,} tokens in {duration(wall_seconds)}; "
                f"{best}; {saved}",
                flush=True,
            )

    def close(self) -> None:
        if self.wandb is not None:
            self.wandb.finish()
            self.wandb = None


class Throughput:
    """Time per iteration between log lines, evaluation time left out, as ms, tokens/s and MFU;
    and the run's wall time so far (every resumed part included) with the time left to max_iters
    at this part's pace (ETA). progress: where the run starts (a checkpoint.Progress: its iteration
    and the wall time its earlier parts took)."""

    def __init__(
        self,
        progress: "Progress",
        *,
        tokens_per_iter: int,
        flops_per_token: int,
        peak_flops: float | None,
        world_size: int = 1,
        max_iters: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        self.tokens_per_iter, self.flops_per_token = tokens_per_iter, flops_per_token
        self.peak_flops, self.world_size, self.clock = peak_flops, world_size, clock
        self.elapsed_before, self.start, self.iter_num = progress.elapsed_s, clock(), progress.iter_num
        self.run_start, self.first_iter, self.max_iters = self.start, progress.iter_num, max_iters

    @contextmanager
    def paused(self) -> Iterator[None]:
        t0 = self.clock()
        yield
        self.start += self.clock() - t0

    def lap(self, iter_num: int) -> dict:
        """The pace since the last lap, now that iteration iter_num is done; elapsed_s is the run's
        wall time (what its Progress carries from here)."""
        now = self.clock()
        seconds = (now - self.start) / max(1, iter_num - self.iter_num)
        self.start, self.iter_num = now, iter_num
        tok_per_s = self.tokens_per_iter / seconds
        mfu = flops.mfu(self.flops_per_token, tok_per_s / self.world_size, self.peak_flops)
        elapsed = now - self.run_start
        eta = elapsed / max(1, iter_num - self.first_iter) * max(0, self.max_iters - iter_num)
        return {
            "ms": round(seconds * 1000, 2),
            "tok_per_s": round(tok_per_s, 1),
            "mfu": mfu,
            "elapsed_s": round(self.elapsed_before + elapsed, 1),
            "eta_s": round(eta, 1),
        }

    def wall_seconds(self) -> float:
        """Seconds since this part of the run started."""
        return self.clock() - self.run_start
