"""
Alarms: what a run's numbers say is going wrong, each raised once, when it first holds, saying
what it measured and what usually fixes it. train.py prints them and records them in
metrics.jsonl (rows with "alarm" and "message"); thresholds are train.py settings, 0 turns one off.

    epochs_planned  the run plans to read the train split more than alarm_epochs times (at start)
    epoch_<k>       the run finished its k-th pass over the train split (k >= alarm_epochs)
    plateau         val loss has not improved by more than min_delta for `patience` evaluations
                    (early_stop=True ends the run there)
    overfitting     the val-train gap widened at each of the last overfit_evals evaluations, by at
                    least overfit_gap in all and by more than val loss improved
    val_rising      val loss rose at each of the last rise_evals evaluations while the learning
                    rate was still above half its peak

The detectors are pure functions of the evaluation history: metrics.jsonl's rows that carry
val_loss (iter, tokens, epoch, lr, val_loss, train_eval_loss), oldest first. So they are tested on
made-up histories, and a resumed run rebuilds its history, and what it already raised, from the
rows it kept.
"""

import math
from dataclasses import dataclass

from fitgpt.settings import TrainSettings


@dataclass(frozen=True)
class Alarm:
    name: str
    iter: int
    tokens: int
    measured: str
    fix: str

    @property
    def message(self) -> str:
        return f"{self.measured}. Usual fix: {self.fix}"

    def line(self) -> str:
        return f"ALARM {self.name} at iteration {self.iter:,}: {self.message}"

    def record(self) -> dict:
        return {"iter": self.iter, "tokens": self.tokens, "alarm": self.name, "message": self.message}


def planned_epochs(
    train_tokens: int, tokens_per_iter: int, max_iters: int, *, limit: float, iter_num: int = 0, tokens: int = 0
) -> Alarm | None:
    """More passes over the train split planned than limit: past one, val loss plateaus."""
    total = tokens_per_iter * max_iters
    epochs = total / train_tokens
    if not limit or epochs <= limit:
        return None
    return Alarm(
        "epochs_planned",
        iter_num,
        tokens,
        f"this run reads the train split {epochs:.1f} times over ({total:,} tokens planned, {train_tokens:,} in "
        f"the split); past one epoch val loss plateaus and the model memorises",
        f"more or deduplicated data (at least {total:,} tokens), or fewer iterations "
        f"(max_iters <= {train_tokens // tokens_per_iter:,} stays within one epoch)",
    )


def epochs_crossed(
    tokens_before: int, record: dict, train_tokens: int, tokens_per_iter: int, *, limit: float
) -> list[Alarm]:
    """One alarm per whole epoch k >= limit completed between tokens_before and this row's tokens."""
    if not limit:
        return []
    tokens = record["tokens"]
    first = max(tokens_before // train_tokens + 1, math.ceil(limit))
    alarms = []
    for k in range(first, tokens // train_tokens + 1):
        if k == 1:
            measured = (
                f"epoch 1 done: {tokens:,} tokens seen, the whole {train_tokens:,}-token train split; from here "
                f"on every batch repeats text the model has trained on"
            )
        else:
            measured = f"epoch {k} done: {tokens:,} tokens seen, {k} passes over the train split"
        fix = (
            f"more or deduplicated data, or fewer iterations (max_iters <= {train_tokens // tokens_per_iter:,} "
            f"stays within one epoch)"
        )
        alarms.append(Alarm(f"epoch_{k}", record["iter"], tokens, measured, fix))
    return alarms


def plateau(history: list[dict], patience: int, min_delta: float = 0.0) -> Alarm | None:
    """Val loss not improved by more than min_delta for the last `patience` evaluations."""
    if patience <= 0 or len(history) <= patience:
        return None
    best = 0
    for i, row in enumerate(history):
        if row["val_loss"] < history[best]["val_loss"] - min_delta:
            best = i
    stale = len(history) - 1 - best
    if stale < patience:
        return None
    last, best_row = history[-1], history[best]
    epoch = last.get("epoch", 0.0)
    measured = (
        f"val loss has not improved for {stale} evaluations: best {best_row['val_loss']:.4f} at iteration "
        f"{best_row['iter']:,}, {last['val_loss']:.4f} now"
    )
    stop_there = f"max_iters about {best_row['iter']:,}, or early_stop=True"
    if epoch > 1:
        fix = f"more or deduplicated data (this is epoch {epoch:.1f}), or fewer iterations ({stop_there})"
    else:
        fix = f"fewer iterations ({stop_there}), or a lower final lr (min_lr)"
    return Alarm("plateau", last["iter"], last["tokens"], measured, fix)


def overfitting(history: list[dict], evals: int, min_widening: float) -> Alarm | None:
    """The val-train gap widened at each of the last `evals` evaluations, by min_widening in all,
    and by more than val loss improved: train loss fell over twice as fast as val loss. (Early in
    training both fall fast, and the gap grows a little while the model learns what differs
    between the splits: that is not memorising.)"""
    if evals <= 0 or len(history) <= evals:
        return None
    window = history[-(evals + 1) :]
    gaps = [row["val_loss"] - row["train_eval_loss"] for row in window]
    first, last = window[0], window[-1]
    widened, val_gain = gaps[-1] - gaps[0], first["val_loss"] - last["val_loss"]
    every_time = all(later > earlier for earlier, later in zip(gaps, gaps[1:]))
    if not every_time or widened < min_widening or widened <= val_gain or gaps[-1] <= 0:
        return None
    measured = (
        f"the val-train gap widened at each of the last {evals} evaluations, from {gaps[0]:.3f} to {gaps[-1]:.3f}, "
        f"more than val loss improved (train {first['train_eval_loss']:.4f} -> {last['train_eval_loss']:.4f}, "
        f"val {first['val_loss']:.4f} -> {last['val_loss']:.4f}): the model is memorising the train split"
    )
    fix = "more or deduplicated data, a smaller model, or more regularisation (dropout, weight_decay)"
    return Alarm("overfitting", last["iter"], last["tokens"], measured, fix)


def val_rising(history: list[dict], evals: int, peak_lr: float) -> Alarm | None:
    """Val loss rose at each of the last `evals` evaluations while lr was above half of peak_lr."""
    if evals <= 0 or len(history) <= evals:
        return None
    window = history[-(evals + 1) :]
    losses = [row["val_loss"] for row in window]
    last = window[-1]
    if not all(later > earlier for earlier, later in zip(losses, losses[1:])) or last["lr"] <= peak_lr / 2:
        return None
    measured = (
        f"val loss rose at each of the last {evals} evaluations ({losses[0]:.4f} -> {losses[-1]:.4f}) while lr is "
        f"{last['lr']:.2e}, above half its peak {peak_lr:.2e}"
    )
    fix = "a lower learning_rate, or a schedule that decays sooner (lr_decay_iters) to a lower final lr (min_lr)"
    return Alarm("val_rising", last["iter"], last["tokens"], measured, fix)


class RunAlarms:
    """The alarms of one run, each returned once, the first time it holds. past: the metrics.jsonl
    rows a resumed run kept, whose evaluations and alarms count as this run's."""

    def __init__(self, s: TrainSettings, train_tokens: int, past: list[dict] = ()):
        self.s, self.train_tokens = s, train_tokens
        self.history = [row for row in past if "val_loss" in row]
        self.raised = {row["alarm"] for row in past if "alarm" in row}
        self.tokens = max((row["tokens"] for row in past), default=0)
        self.stop_reason = None  # set while early_stop=True and val loss has plateaued

    def start(self, iter_num: int, tokens: int) -> list[Alarm]:
        """The alarms a run's plan raises before its first step."""
        if self.s.eval_only:
            return []
        s = self.s
        return self._new(
            [
                planned_epochs(
                    self.train_tokens,
                    s.tokens_per_iter,
                    s.max_iters,
                    limit=s.alarm_epochs,
                    iter_num=iter_num,
                    tokens=tokens,
                )
            ]
        )

    def update(self, record: dict) -> list[Alarm]:
        """The alarms that first hold after this metrics.jsonl row (a step or an evaluation)."""
        s = self.s
        found = epochs_crossed(self.tokens, record, self.train_tokens, s.tokens_per_iter, limit=s.alarm_epochs)
        self.tokens = record["tokens"]
        if "val_loss" in record:
            self.history.append(record)
            stalled = plateau(self.history, s.patience, s.min_delta)
            if stalled and s.early_stop:
                self.stop_reason = f"early stop: {stalled.measured}"
            found += [
                stalled,
                overfitting(self.history, s.overfit_evals, s.overfit_gap),
                val_rising(self.history, s.rise_evals, s.learning_rate),
            ]
        return self._new(found)

    def _new(self, alarms: list[Alarm | None]) -> list[Alarm]:
        fresh = [alarm for alarm in alarms if alarm is not None and alarm.name not in self.raised]
        self.raised.update(alarm.name for alarm in fresh)
        return fresh
