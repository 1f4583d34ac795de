"""
What a run reports: out_dir/config.json (what ran: settings, model, size, data, device, versions,
git commit), one JSON object per logged step in out_dir/metrics.jsonl, the console lines, the
alarms (fitgpt/alarms.py), and (wandb_log=True) the same records and config in Weights & Biases.
Only rank 0 reports. plot.py reads these files back (fitgpt/runs.py).

metrics.jsonl rows: a step has iter, tokens, flops (so far), epoch, loss, lr, ms, tok_per_s, mfu,
elapsed_s (wall time since the run started, every resumed part included), eta_s, grad_norm,
skipped, and val_loss with train_eval_loss (and val_bpb, bits per byte, when the dataset's val
text is known: fitgpt/bpb.py) when it was evaluated; the evaluation before the first step has
iter, tokens, flops, epoch, lr, elapsed_s, val_loss, train_eval_loss, val_bpb; an alarm has iter,
tokens, alarm (its name) and message; the run's end has iter, tokens, flops, epoch, finished
(False when a signal stopped it) and best_val_loss; a HellaSwag score (train.py's
hellaswag_interval, or evaluate.py afterwards) has iter, tokens, hellaswag_items, hellaswag_acc,
hellaswag_acc_norm and their _stderr; the plan check (once, after the second logged step) has
iter, tokens and plan_check_ followed by predicted_allocated_gib, predicted_reserved_gib,
measured_allocated_gib, measured_reserved_gib (None off a GPU), planned_mfu and measured_mfu.
"""

import dataclasses
import datetime
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from fitgpt import accounting
from fitgpt.alarms import Alarm, RunAlarms
from fitgpt.architecture import GPTConfig
from fitgpt.bpb import bits_per_byte
from fitgpt.errors import DataError
from fitgpt.fsutil import atomic_write
from fitgpt.settings import TrainSettings
from fitgpt.shards import REPO

if TYPE_CHECKING:  # only for the annotation: this module stays free of torch
    from fitgpt.checkpoint import Progress

CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"


def read_records(path: str) -> list[dict]:
    """The rows of a metrics.jsonl. A last line that is not whole JSON (the run is writing it, or
    was killed while it did) is left out; a broken line before it is a DataError."""
    with open(path, encoding="utf-8") as f:
        lines = f.readlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise DataError(f"{path}: line {number} is not JSON; the file is damaged, remove that line") from None
    return records


def git_commit(repo: str = REPO) -> dict | None:
    """{commit, dirty} of the repository the code runs from, or None outside a git checkout."""
    try:
        head = subprocess.run(["git", "-C", repo, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return None
        status = subprocess.run(
            ["git", "-C", repo, "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):  # no git on this machine, or it hung
        return None
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip())}


def run_config(
    s: TrainSettings,
    model: GPTConfig,
    data_dir: str,
    meta: dict | None,
    split_tokens: tuple[int, int],
    device: str,
    dtype: str,
    world_size: int,
    versions: dict,
) -> dict:
    """What config.json holds: the resolved settings, the model and its size, the dataset (its
    folder, train and val tokens, vocabulary), the device, library versions and the git commit."""
    return {
        "name": os.path.basename(os.path.normpath(s.out_dir)),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": dataclasses.asdict(s),
        "model_args": model.to_dict(),
        "params": accounting.param_count(model),
        "flops_per_token": accounting.flops_per_token(model),
        "tokens_per_iter": s.tokens_per_iter,
        "dataset": {
            "path": os.path.abspath(data_dir),
            "train_tokens": split_tokens[0],
            "val_tokens": split_tokens[1],
            "vocab_size": (meta or {}).get("vocab_size"),
            "tokenizer": (meta or {}).get("tokenizer"),
        },
        "device": device,
        "dtype": dtype,
        "world_size": world_size,
        "versions": versions,
        "git": git_commit(),
    }


def write_run_config(out_dir: str, config: dict) -> None:
    text = json.dumps(config, indent=1).encode("utf-8")
    atomic_write(os.path.join(out_dir, CONFIG_FILE), lambda f: f.write(text))


def read_run_config(out_dir: str) -> dict | None:
    """A run's config.json, or None when it has none (runs from before config.json)."""
    path = os.path.join(out_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); delete it, or resume the run, which rewrites it") from None


def warn(message: str) -> None:
    print(f"WARNING: {message}", flush=True)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


class MetricsLog:
    """out_dir/metrics.jsonl: one JSON object per logged step, only ever appended to. A resumed
    run keeps (in kept) the rows up to its checkpoint and drops the later ones, so its log reads
    as one run: the kept rows go to a new file, renamed over the old one (a kill at any moment
    leaves one or the other, whole)."""

    def __init__(self, path: str, resume_iter: int | None = None):
        self.path, self.kept = path, []
        if resume_iter is not None and os.path.exists(path):
            self.kept = [record for record in read_records(path) if record["iter"] <= resume_iter]
            text = "".join(json.dumps(record) + "\n" for record in self.kept).encode("utf-8")
            atomic_write(path, lambda f: f.write(text))  # a half-written last row goes too
        elif resume_iter is None and os.path.exists(path):
            os.remove(path)

    def write(self, record: dict) -> None:
        append_record(self.path, record)


def append_record(path: str, record: dict) -> None:
    """Add one row to a metrics.jsonl (evaluate.py adds its results to a finished run's)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


class WandbRun:
    """A wandb run that never stops training: a missing wandb, an init that fails (online, then
    offline too) or a log call that fails warns once, and the metrics go on to metrics.jsonl."""

    def __init__(self, project: str, name: str, config: dict):
        self.run = None
        try:
            import wandb  # optional: imported only when asked for
        except ImportError:
            warn("wandb_log=True but wandb is not installed (pip install wandb); metrics go to metrics.jsonl only")
            return
        try:
            self.run = wandb.init(project=project, name=name, config=config)
            return
        except Exception as e:  # no account, no network, a bad setting: wandb raises many kinds
            online = first_line(e)
        try:
            self.run = wandb.init(project=project, name=name, config=config, mode="offline")
            warn(f"wandb could not start online ({online}); logging offline instead (upload later: wandb sync)")
        except Exception as e:
            warn(f"wandb could not start ({online}; offline: {first_line(e)}); metrics go to metrics.jsonl only")

    def log(self, record: dict) -> None:
        if self.run is None:
            return
        step = record["iter"]
        if "alarm" in record:  # a key per alarm, so that two raised at one iteration stay apart
            record = {f"alarm/{record['alarm']}": record["message"]}
        try:
            self.run.log(record, step=step)
        except Exception as e:
            warn(f"wandb stopped logging ({first_line(e)}); metrics go on to metrics.jsonl only")
            self.run = None

    def finish(self) -> None:
        run, self.run = self.run, None
        if run is not None:
            try:
                run.finish()
            except Exception as e:
                warn(f"wandb could not finish its run ({first_line(e)}); metrics.jsonl is complete")


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

    def evaluation(self, progress: "Progress", losses: dict, lr: float, record: bool = False) -> None:
        """Print an evaluation; record=True also logs it on its own (the first one, eval_only)."""
        if not self.active:
            return
        print(eval_line(progress.iter_num, losses, self.bpb(losses)), flush=True)
        if record:
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

    def step(self, progress: "Progress", loss: float, lr: float, grad_norm: float, rates: dict, losses: dict) -> None:
        """Log and print a training step: progress (a checkpoint.Progress), the mean loss, learning
        rate and gradient norm, the throughput figures, and the evaluation losses when it was
        evaluated; then the alarms that first hold."""
        if not self.active:
            return
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

    def plan_check(self, progress: "Progress", check: dict, line: str, warning: str | None) -> None:
        """Print the plan-against-measurement line once; keep it in metrics.jsonl and config.json."""
        if not self.active:
            return
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
    at this part's pace (ETA). progress: the run's checkpoint.Progress, read for the iteration;
    each lap stores the wall time in its elapsed_s, which checkpoints carry."""

    def __init__(
        self,
        tokens_per_iter: int,
        flops_per_token: int,
        peak_flops: float | None,
        world_size: int,
        progress: "Progress",
        max_iters: int = 0,
        clock: Callable[[], float] = time.time,
    ):
        self.tokens_per_iter, self.flops_per_token = tokens_per_iter, flops_per_token
        self.peak_flops, self.world_size, self.clock = peak_flops, world_size, clock
        self.progress, self.elapsed_before = progress, progress.elapsed_s
        self.start, self.iter_num = clock(), progress.iter_num
        self.run_start, self.first_iter, self.max_iters = self.start, progress.iter_num, max_iters

    @contextmanager
    def paused(self) -> Iterator[None]:
        t0 = self.clock()
        yield
        self.start += self.clock() - t0

    def lap(self) -> dict:
        now, iter_num = self.clock(), self.progress.iter_num
        seconds = (now - self.start) / max(1, iter_num - self.iter_num)
        self.start, self.iter_num = now, iter_num
        tok_per_s = self.tokens_per_iter / seconds
        mfu = accounting.mfu(self.flops_per_token, tok_per_s / self.world_size, self.peak_flops)
        elapsed = now - self.run_start
        eta = elapsed / max(1, iter_num - self.first_iter) * max(0, self.max_iters - iter_num)
        self.progress.elapsed_s = self.elapsed_before + elapsed
        return {
            "ms": round(seconds * 1000, 2),
            "tok_per_s": round(tok_per_s, 1),
            "mfu": mfu,
            "elapsed_s": round(self.progress.elapsed_s, 1),
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


def eval_line(iter_num: int, losses: dict, bpb: float | None = None) -> str:
    line = f"iter {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
    return line if bpb is None else f"{line}, val {bpb:.4f} bits per byte"


def hellaswag_line(result: dict) -> str:
    return (
        f"hellaswag: {result['items']:,} items: acc {result['acc']:.4f} ± {result['acc_stderr']:.4f}, "
        f"acc_norm {result['acc_norm']:.4f} ± {result['acc_norm_stderr']:.4f}"
    )


def hellaswag_fields(result: dict) -> dict:
    """A HellaSwag result as metrics.jsonl fields: hellaswag_acc, hellaswag_acc_norm, ..."""
    return {f"hellaswag_{key}": value for key, value in result.items()}


def step_line(record: dict) -> str:
    mfu = f"{100 * record['mfu']:.1f}%" if record.get("mfu") is not None else "n/a"
    return (
        f"iter {record['iter']}: loss {record['loss']:.4f}, lr {record['lr']:.2e}, {record['ms']:.1f} ms, "
        f"{record['tok_per_s']:,.0f} tok/s, mfu {mfu}, {duration(record['elapsed_s'])} elapsed, "
        f"ETA {duration(record['eta_s'])}"
    )


def data_line(data_dir: str, train_tokens: int, val_tokens: int, tokens_per_iter: int, max_iters: int) -> str:
    """The data line printed at start: the splits, and the tokens and epochs the run will read
    (the epochs_planned alarm says when that is too many)."""
    total = tokens_per_iter * max_iters
    return (
        f"data: {data_dir}: {train_tokens:,} train / {val_tokens:,} val tokens; {tokens_per_iter:,} tokens per "
        f"iteration x {max_iters:,} iterations = {total:,} tokens = {total / train_tokens:.2f} epochs"
    )
