"""
What a run reports: one JSON object per logged step in out_dir/metrics.jsonl, the console line,
and (wandb_log=True) the same records in Weights & Biases. Only rank 0 reports.
"""

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fitgpt import accounting

if TYPE_CHECKING:  # only for the annotation: this module stays free of torch
    from fitgpt.checkpoint import Progress


class MetricsLog:
    """out_dir/metrics.jsonl: one JSON object per logged step."""

    def __init__(self, path: str, resume_iter: int | None = None):
        self.path = path
        if resume_iter is not None and os.path.exists(path):
            # drop what was logged after the checkpoint, so a resumed run's log reads as one run
            with open(path, encoding="utf-8") as f:
                kept = [line for line in f if line.strip() and json.loads(line)["iter"] <= resume_iter]
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(kept)
        elif resume_iter is None and os.path.exists(path):
            os.remove(path)

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class RunLog:
    """metrics.jsonl plus, when wandb_config is given, a wandb run with the same records (the
    iteration-0 evaluation included). Inactive (every call a no-op) on ranks other than 0."""

    def __init__(
        self,
        out_dir: str,
        active: bool,
        resume_iter: int | None = None,
        wandb_config: dict | None = None,
        wandb_project: str = "fitgpt",
        wandb_run_name: str = "run",
    ):
        self.active = active
        self.file = MetricsLog(os.path.join(out_dir, "metrics.jsonl"), resume_iter) if active else None
        self.wandb = None
        if active and wandb_config is not None:
            import wandb  # optional: imported only when asked for

            self.wandb = wandb.init(project=wandb_project, name=wandb_run_name, config=wandb_config)

    def write(self, record: dict) -> None:
        if not self.active:
            return
        self.file.write(record)
        if self.wandb is not None:
            self.wandb.log(record, step=record["iter"])

    def evaluation(self, iter_num: int, tokens: int, losses: dict, record: bool = False) -> None:
        """Print an evaluation; record=True also logs it on its own (the first one, eval_only)."""
        if not self.active:
            return
        print(eval_line(iter_num, losses), flush=True)
        if record:
            self.write(
                {"iter": iter_num, "tokens": tokens, "val_loss": losses["val"], "train_eval_loss": losses["train"]}
            )

    def step(
        self, progress: "Progress", epoch: float, loss: float, lr: float, grad_norm: float, rates: dict, losses: dict
    ) -> None:
        """Log and print a training step: progress (a checkpoint.Progress), the epochs read, the mean
        loss, learning rate and gradient norm, the throughput figures, and the evaluation losses
        when it was evaluated."""
        if not self.active:
            return
        record = {
            "iter": progress.iter_num,
            "tokens": progress.tokens_seen,
            "epoch": round(epoch, 4),
            "loss": loss,
            "lr": lr,
            **rates,
            "grad_norm": grad_norm,
            "skipped": progress.skipped_batches,
        }
        if losses:
            record["val_loss"], record["train_eval_loss"] = losses["val"], losses["train"]
        self.write(record)
        print(step_line(record), flush=True)

    def stopped(self, iter_num: int, out_dir: str) -> None:
        if self.active:
            print(
                f"stopped at iteration {iter_num}; resume with: python train.py --init_from=resume --out_dir={out_dir}",
                flush=True,
            )

    def summary(self, progress: "Progress", wall_seconds: float, checkpoint: str | None) -> None:
        """The end-of-run line: how far it came, the best val loss, the time, the checkpoint."""
        if self.active:
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
    and the run's wall time so far with the time left to max_iters at the pace so far (ETA)."""

    def __init__(
        self,
        tokens_per_iter: int,
        flops_per_token: int,
        peak_flops: float | None,
        world_size: int,
        iter_num: int = 0,
        max_iters: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        self.tokens_per_iter, self.flops_per_token = tokens_per_iter, flops_per_token
        self.peak_flops, self.world_size, self.clock = peak_flops, world_size, clock
        self.start, self.iter_num = clock(), iter_num
        self.run_start, self.first_iter, self.max_iters = self.start, iter_num, max_iters

    @contextmanager
    def paused(self) -> Iterator[None]:
        t0 = self.clock()
        yield
        self.start += self.clock() - t0

    def lap(self, iter_num: int) -> dict:
        now = self.clock()
        seconds = (now - self.start) / max(1, iter_num - self.iter_num)
        self.start, self.iter_num = now, iter_num
        tok_per_s = self.tokens_per_iter / seconds
        mfu = accounting.mfu(self.flops_per_token, tok_per_s / self.world_size, self.peak_flops)
        elapsed = now - self.run_start
        eta = elapsed / max(1, iter_num - self.first_iter) * max(0, self.max_iters - iter_num)
        return {
            "ms": round(seconds * 1000, 2),
            "tok_per_s": round(tok_per_s, 1),
            "mfu": mfu,
            "elapsed_s": round(elapsed, 1),
            "eta_s": round(eta, 1),
        }


def duration(seconds: float) -> str:
    """45s, 3m 05s, 2h 14m, 3d 04h."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def eval_line(iter_num: int, losses: dict) -> str:
    return f"iter {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"


def step_line(record: dict) -> str:
    mfu = f"{100 * record['mfu']:.1f}%" if record.get("mfu") is not None else "n/a"
    return (
        f"iter {record['iter']}: loss {record['loss']:.4f}, lr {record['lr']:.2e}, {record['ms']:.1f} ms, "
        f"{record['tok_per_s']:,.0f} tok/s, mfu {mfu}, {duration(record['elapsed_s'])} elapsed, "
        f"ETA {duration(record['eta_s'])}"
    )


def epoch_report(data_dir: str, train_tokens: int, val_tokens: int, tokens_per_iter: int, max_iters: int) -> list[str]:
    """The data line printed at start, and a warning when the run reads the train split more than once."""
    total = tokens_per_iter * max_iters
    epochs = total / train_tokens
    lines = [
        f"data: {data_dir}: {train_tokens:,} train / {val_tokens:,} val tokens; {tokens_per_iter:,} tokens per "
        f"iteration x {max_iters:,} iterations = {total:,} tokens = {epochs:.2f} epochs"
    ]
    if epochs > 1:
        lines.append(
            f"WARNING: this run reads the train split {epochs:.1f} times over; past one epoch val loss "
            f"plateaus and the model memorises. Fix: prepare more tokens (at least {total:,}), or set "
            f"max_iters <= {train_tokens // tokens_per_iter:,} to stay within one epoch."
        )
    return lines
