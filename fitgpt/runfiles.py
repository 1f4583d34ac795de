"""
A run folder's files: out_dir/config.json (what ran: settings, model, size, data, device, versions,
git commit) and out_dir/metrics.jsonl (one JSON object per row, only ever appended to), written
crash-safely and read back (plot.py, sweep.py, evaluate.py, the suite). Torch-free.

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

from fitgpt import flops
from fitgpt.architecture import GPTConfig
from fitgpt.errors import DataError
from fitgpt.fsutil import atomic_write
from fitgpt.settings import TrainSettings
from fitgpt.shards import REPO

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


def append_record(path: str, record: dict) -> None:
    """Add one row to a metrics.jsonl (evaluate.py adds its results to a finished run's)."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


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


def hellaswag_fields(result: dict) -> dict:
    """A HellaSwag result as metrics.jsonl fields: hellaswag_acc, hellaswag_acc_norm, ..."""
    return {f"hellaswag_{key}": value for key, value in result.items()}


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
    s: TrainSettings, model: GPTConfig, *, dataset: dict, device: str, dtype: str, world_size: int, versions: dict
) -> dict:
    """What config.json holds: the resolved settings, the model and its size, the dataset (its
    folder, train and val tokens, vocabulary, the val text's bytes: dataset_facts), the device,
    library versions and the git commit."""
    return {
        "name": os.path.basename(os.path.normpath(s.out_dir)),
        "started": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "settings": dataclasses.asdict(s),
        "model_args": model.to_dict(),
        "params": flops.param_count(model),
        "flops_per_token": flops.flops_per_token(model),
        "tokens_per_iter": s.tokens_per_iter,
        "dataset": dataset,
        "device": device,
        "dtype": dtype,
        "world_size": world_size,
        "versions": versions,
        "git": git_commit(),
    }


def dataset_facts(data_dir: str, meta: dict | None, split_tokens: tuple[int, int], val_bytes: dict | None) -> dict:
    """config.json's dataset: its folder, train and val tokens, vocabulary, tokenizer and the val
    text's bytes (None: bits per byte unknown)."""
    return {
        "path": os.path.abspath(data_dir),
        "train_tokens": split_tokens[0],
        "val_tokens": split_tokens[1],
        "vocab_size": (meta or {}).get("vocab_size"),
        "tokenizer": (meta or {}).get("tokenizer"),
        "val_bytes": val_bytes,
    }


def write_run_config(out_dir: str, config: dict) -> None:
    text = json.dumps(config, indent=1).encode("utf-8")
    atomic_write(os.path.join(out_dir, CONFIG_FILE), lambda f: f.write(text))


def read_run_config(out_dir: str) -> dict | None:
    """A run's config.json, or None when it has none (a folder holding only a metrics.jsonl)."""
    path = os.path.join(out_dir, CONFIG_FILE)
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: not valid JSON ({e}); delete it, or resume the run, which rewrites it") from None
