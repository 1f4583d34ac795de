"""torchrun with 2 CPU processes (gloo): DDP and FSDP2 train on exactly what one process trains
on, a checkpoint moves between world sizes, and shutdown is clean."""

import json
import os
import shutil

import pytest

import train
from conftest import as_args, run_script, tiny_settings

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


def assert_same_curve(a, b):
    assert [i for i, _ in a] == [i for i, _ in b]
    assert [round(x, 5) for _, x in a] == [round(x, 5) for _, x in b]


@pytest.mark.slow
@pytest.mark.parametrize(
    "parallelism, order, optimizer",
    [("ddp", "sequential", "adamw"), ("fsdp", "random", "adamw"), ("ddp", "random", "muon")],
)
def test_two_ranks_train_like_one_process_and_hand_over_to_one(char_dataset, tmp_path, parallelism, order, optimizer):
    one = tmp_path / "one"
    train.run(settings(char_dataset, one, data_order=order, optimizer=optimizer))
    two = tmp_path / "two"
    run_script(
        *TORCHRUN, *as_args(settings(char_dataset, two, data_order=order, parallelism=parallelism, optimizer=optimizer))
    )
    assert_same_curve(curve(one), curve(two))  # 6 steps, evaluations included: every rank took the same update
    resumed = tmp_path / "resumed"  # the 2-rank checkpoint of iteration 3, finished by one process
    resumed.mkdir()
    shutil.copy(two / "ckpt_3.pt", resumed / "ckpt.pt")
    train.run(
        settings(char_dataset, resumed, init_from="resume", optimizer=optimizer),
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
