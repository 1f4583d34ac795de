"""torchrun with 2 CPU processes (gloo): DDP and FSDP2 train on exactly what one process trains
on, a checkpoint moves between world sizes, and shutdown is clean."""

import json
import os
import shutil
from contextlib import nullcontext

import pytest
import torch

import train
from conftest import as_args, run_script, tiny_settings
from fitgpt import training
from fitgpt.distributed import Distributed

TORCHRUN = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py"]


def curve(out_dir):
    """(iter, train loss or val loss) of every logged line."""
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        rows = [r for r in map(json.loads, f) if "loss" in r or "val_loss" in r]  # not the run's end
        return [(r["iter"], r.get("loss", r.get("val_loss"))) for r in rows]


def settings(char_dataset, out_dir, **overrides):
    # 6 steps of 2 micro-batches (one per rank), evaluated and saved every 3
    defaults = dict(max_iters=6, eval_interval=3, log_interval=1, lr_decay_iters=6, warmup_iters=2, keep_last=2)
    return tiny_settings(data_dir=char_dataset, out_dir=str(out_dir), **{**defaults, **overrides})


class IndexLoader:
    """Batches whose loss is their index in the stream: rank r of W reads r, r+W, ..."""

    def __init__(self, rank, world_size):
        self.rank, self.world_size = rank, world_size

    def reset(self):
        self.read = 0

    def next_batch(self):
        index = self.rank + self.read * self.world_size
        self.read += 1
        return torch.tensor([float(index)]), None


class MeanOf(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.passes = 0

    def forward(self, x, y):
        self.passes += 1
        return None, x.mean()


def test_every_rank_evaluates_as_many_batches(monkeypatch):
    """eval_iters=5 on 2 ranks: both run 3 forward passes (a spare one on rank 1, dropped), and the
    sum over the ranks is that of batches 0-4."""
    monkeypatch.setattr(training, "sum_over_ranks", lambda values, dist, device: values)
    sums, passes = [], []
    for rank in (0, 1):
        model, dist = MeanOf(), Distributed(rank=rank, world_size=2, enabled=True)
        loss = training.estimate_loss(model, {"val": IndexLoader(rank, 2)}, 5, nullcontext(), dist=dist, device="cpu")[
            "val"
        ]
        sums.append(loss * 5)
        passes.append(model.passes)
    assert passes == [3, 3] and sum(sums) == 0 + 1 + 2 + 3 + 4


def assert_same_curve(a, b):
    assert [i for i, _ in a] == [i for i, _ in b]
    assert [round(x, 5) for _, x in a] == [round(x, 5) for _, x in b]


@pytest.mark.slow
@pytest.mark.parametrize(
    "parallelism, order, optimizer, eval_iters",
    [("ddp", "sequential", "adamw", 4), ("fsdp", "random", "adamw", 3), ("ddp", "random", "muon", 4)],
)
def test_two_ranks_train_like_one_process_and_hand_over_to_one(
    char_dataset, tmp_path, parallelism, order, optimizer, eval_iters
):
    """eval_iters=3 on 2 FSDP ranks: one rank scores a spare batch, or the ranks would wait in
    different collectives (a hang until dist_timeout)."""
    one = tmp_path / "one"
    train.run(settings(char_dataset, one, data_order=order, optimizer=optimizer, eval_iters=eval_iters))
    two = tmp_path / "two"
    two_ranks = settings(
        char_dataset, two, data_order=order, parallelism=parallelism, optimizer=optimizer, eval_iters=eval_iters
    )
    run_script(*TORCHRUN, *as_args(two_ranks), "--dist_timeout=60", timeout=120)
    assert_same_curve(curve(one), curve(two))  # 6 steps, evaluations included: every rank took the same update
    resumed = tmp_path / "resumed"  # the 2-rank checkpoint of iteration 3, finished by one process
    resumed.mkdir()
    shutil.copy(two / "ckpt_3.pt", resumed / "ckpt.pt")
    train.run(
        settings(char_dataset, resumed, init_from="resume", optimizer=optimizer, eval_iters=eval_iters),
        {"out_dir": str(resumed), "parallelism": "ddp"},
    )
    assert_same_curve([p for p in curve(one) if p[0] > 3], [p for p in curve(resumed) if p[0] > 3])


@pytest.mark.slow
def test_one_process_checkpoint_resumes_on_two_ranks(char_dataset, tmp_path):
    reference = tmp_path / "reference"
    train.run(settings(char_dataset, reference))
    out = tmp_path / "run"
    train.run(settings(char_dataset, out, max_iters=3))
    result = run_script(*TORCHRUN, "--init_from=resume", f"--out_dir={out}", "--max_iters=6")
    assert "resuming from" in result.stdout and "terminate called" not in result.stderr
    assert_same_curve(curve(reference), curve(out))


@pytest.mark.slow
@pytest.mark.stress
def test_shutdown_is_clean_every_time(char_dataset, tmp_path):
    """20 short 2-rank runs: every one exits 0 with nothing from C++ on the way out (run with
    python -m pytest -m stress; about 2 minutes on 2 cores)."""
    args = as_args(settings(char_dataset, tmp_path / "run", max_iters=2, eval_interval=2, eval_iters=1))
    for attempt in range(20):
        result = run_script(*TORCHRUN, *args, f"--out_dir={tmp_path / str(attempt)}", check=False)
        assert result.returncode == 0 and "terminate called" not in result.stderr, (attempt, result.stderr[-2000:])


@pytest.mark.slow
def test_two_rank_dropout_run_resumes_bit_exact(char_dataset, tmp_path):
    """Each rank draws its own dropout masks: a 2-rank checkpoint holds every rank's RNG states
    and a 2-rank resume puts each back on its rank, so the resumed run is the uninterrupted one."""
    two = tmp_path / "two"
    run_script(*TORCHRUN, *as_args(settings(char_dataset, two, dropout=0.1)))
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copy(two / "ckpt_3.pt", resumed / "ckpt.pt")
    run_script(*TORCHRUN, "--init_from=resume", f"--out_dir={resumed}")
    assert [p for p in curve(two) if p[0] > 3] == curve(resumed)
    a, b = (torch.load(folder / "ckpt.pt", weights_only=True) for folder in (two, resumed))
    assert a["iter_num"] == b["iter_num"] == 6
    assert all(torch.equal(tensor, b["model"][name]) for name, tensor in a["model"].items())
