"""
Run folders read back, for plot.py and sweep.py: config.json (when there is one) and metrics.jsonl (of a run
still being written too), and what a chart and a table need from them: a label, curves against
tokens, iterations, FLOPs or wall time, where the run crossed one epoch, its alarms, a summary.
Reads files only, without torch.
"""

import os
from dataclasses import dataclass

import numpy as np

from fitgpt.errors import DataError
from fitgpt.formatting import human_count, short_float
from fitgpt.runfiles import METRICS_FILE, read_records, read_run_config

# --x choice -> the metrics.jsonl key it reads
AXES = {"tokens": "tokens", "iters": "iter", "flops": "flops", "time": "elapsed_s"}


def moving_average(values: list[float], n: int) -> list[float]:
    """The mean of each value and up to n - 1 before it (n <= 1: the values unchanged)."""
    if n <= 1 or not values:
        return list(values)
    sums = np.cumsum(np.asarray(values, dtype=float))
    counts = np.minimum(np.arange(1, len(values) + 1), n)
    shifted = np.concatenate([np.zeros(n), sums])[: len(values)]
    return list((sums - shifted) / counts)


def alarm_summary(names: list[str]) -> str:
    """Alarm names in the order raised, the epoch boundaries folded into one range."""
    epochs = [int(name[6:]) for name in names if name.startswith("epoch_") and name[6:].isdigit()]
    others = [name for name in names if not (name.startswith("epoch_") and name[6:].isdigit())]
    if epochs:
        others.append(f"epoch_{epochs[0]}" if len(epochs) == 1 else f"epoch_{epochs[0]}..{epochs[-1]}")
    return ", ".join(others) or "-"


@dataclass
class Run:
    name: str
    config: dict | None  # None for runs from before config.json
    records: list[dict]

    @classmethod
    def load(cls, path: str) -> "Run":
        metrics = os.path.join(path, METRICS_FILE)
        if not os.path.isfile(metrics):
            raise DataError(f"{path}: no {METRICS_FILE} there; pass run folders that train.py wrote (its out_dir)")
        return cls(os.path.basename(os.path.abspath(path)), read_run_config(path), read_records(metrics))

    @property
    def params(self) -> int | None:
        return (self.config or {}).get("params")

    def label(self) -> str:
        """'run-small · 10.7M · lr 1e-3': the folder, and the size and peak lr from config.json."""
        parts = [self.name]
        if self.config:
            parts += [human_count(self.params), f"lr {short_float(self.config['settings']['learning_rate'])}"]
        return " · ".join(parts)

    def rows(self, key: str) -> list[dict]:
        return [row for row in self.records if key in row and "alarm" not in row]

    def series(self, axis: str, key: str) -> tuple[list[float], list[float]]:
        """(x, y) of every row holding both the axis's key and key."""
        rows = [row for row in self.rows(key) if AXES[axis] in row]
        return [row[AXES[axis]] for row in rows], [row[key] for row in rows]

    def x_at_iter(self, axis: str, iter_num: int) -> float | None:
        """Where iteration iter_num lies on the axis (alarm rows carry iter and tokens only)."""
        xs = [row[AXES[axis]] for row in self.rows("iter") if row["iter"] == iter_num and AXES[axis] in row]
        return xs[0] if xs else None

    def epoch_crossing(self, axis: str) -> float | None:
        """Where on the axis the run finished its first pass over the train split, if it did."""
        xs, epochs = self.series(axis, "epoch")
        if not epochs or epochs[-1] < 1:
            return None
        return float(np.interp(1.0, epochs, xs))

    def alarms(self) -> list[dict]:
        return [row for row in self.records if "alarm" in row]

    def summary(self) -> dict:
        """The table's row: iterations, tokens and epochs so far, final and best val loss."""
        last = self.rows("tokens")[-1] if self.rows("tokens") else {}
        evals = self.rows("val_loss")
        best = min(evals, key=lambda row: row["val_loss"]) if evals else None
        return {
            "run": self.name,
            "params": human_count(self.params) if self.params else "-",
            "iters": f"{last['iter']:,}" if last else "-",
            "tokens": human_count(last["tokens"]) if last else "-",
            "epochs": f"{last['epoch']:.2f}" if "epoch" in last else "-",
            "final val": f"{evals[-1]['val_loss']:.4f}" if evals else "-",
            "best val (iter)": f"{best['val_loss']:.4f} ({best['iter']:,})" if best else "-",
            "alarms": alarm_summary([row["alarm"] for row in self.alarms()]),
        }


def table(runs: list[Run]) -> str:
    """The runs' summaries as aligned text columns."""
    rows = [run.summary() for run in runs]
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(row[c]) for row in rows)) for c in columns}
    lines = ["  ".join(c.ljust(widths[c]) for c in columns)]
    lines += ["  ".join(row[c].ljust(widths[c]) for c in columns) for row in rows]
    return "\n".join(line.rstrip() for line in lines)
