import json
import math
import os

import pytest
import torch

from conftest import run_script
from train import get_lr

LR = dict(learning_rate=1e-3, warmup_iters=10, lr_decay_iters=110, min_lr=1e-4)


@pytest.mark.parametrize("it, expected", [
    (0, 1e-3 / 11),  # warmup: linear from lr/(warmup+1)
    (9, 1e-3 * 10 / 11),
    (10, 1e-3),  # cosine starts at the peak
    (60, 1e-4 + 0.5 * 9e-4),  # halfway down the cosine
    (85, 1e-4 + 0.5 * (1 + math.cos(math.pi * 0.75)) * 9e-4),
    (110, 1e-4),  # end of decay
    (500, 1e-4),  # flat afterwards
])
def test_lr_schedule(it, expected):
    assert get_lr(it, **LR) == pytest.approx(expected, rel=1e-12)


def test_lr_constant_without_decay():
    assert get_lr(50, decay_lr=False, **LR) == 1e-3


TINY = ["--n_layer=2", "--n_head=2", "--n_embd=32", "--block_size=32", "--batch_size=8",
        "--gradient_accumulation_steps=2", "--eval_iters=4", "--log_interval=5", "--compile=False",
        "--device=cpu", "--learning_rate=3e-3", "--warmup_iters=5", "--min_lr=3e-4"]


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_train_resume_sample_end_to_end(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    common = ["config/shakespeare_char.py", *TINY, f"--data_dir={char_dataset}", f"--out_dir={out}",
              "--lr_decay_iters=60", "--eval_interval=20"]
    result = run_script("train.py", *common, "--max_iters=40")
    assert "iter 40" in result.stdout

    records = read_metrics(out)
    evals = [r for r in records if "val_loss" in r]
    assert evals[0]["iter"] == 0 and evals[-1]["iter"] == 40
    assert evals[-1]["val_loss"] < evals[0]["val_loss"] - 0.5  # it learned something
    steps = [r for r in records if "loss" in r]
    assert [r["iter"] for r in steps] == [5, 10, 15, 20, 25, 30, 35, 40]
    assert steps[0]["tokens"] == 5 * 2 * 8 * 32
    for key in ("lr", "ms", "tok_per_s", "mfu", "epoch"):
        assert key in steps[0]

    ckpt = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    assert ckpt["iter_num"] == 40
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])
    assert ckpt["model_args"]["n_layer"] == 2 and ckpt["config"]["batch_size"] == 8
    assert "optimizer" in ckpt

    result = run_script("train.py", "--init_from=resume", f"--out_dir={out}", "--max_iters=60")
    assert "resuming from" in result.stdout and "at iteration 40" in result.stdout
    records = read_metrics(out)
    assert [r["iter"] for r in records if "loss" in r][-4:] == [45, 50, 55, 60]
    assert torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["iter_num"] == 60

    result = run_script("sample.py", f"--out_dir={out}", "--num_samples=2", "--max_new_tokens=50",
                        "--start=ROMEO:", "--device=cpu")
    assert result.stdout.count("ROMEO:") == 2
    assert len(result.stdout) > 2 * 50


def test_compiled_model_checkpoint_has_clean_names(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    run_script("train.py", *TINY, "--compile=True", f"--data_dir={char_dataset}", f"--out_dir={out}",
               "--max_iters=2", "--eval_interval=2", "--eval_iters=1", "--vocab_size=65")
    ckpt = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    assert ckpt["iter_num"] == 2 and not any("_orig_mod" in k for k in ckpt["model"])


def test_bad_setting_is_one_line_error(char_dataset, tmp_path):
    result = run_script("train.py", "--batch_sise=4", check=False)
    assert result.returncode != 0
    assert result.stderr.strip().startswith(
        "error: argument '--batch_sise=4': unknown setting 'batch_sise'; did you mean batch_size")
    assert len(result.stderr.strip().splitlines()) == 1
    result = run_script("train.py", f"--data_dir={tmp_path / 'missing'}", check=False)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"no train shards in {tmp_path / 'missing'} (or the folder does not exist)" in result.stderr


def test_epoch_accounting_warns_past_one_epoch(shakespeare_text, tmp_path):
    data = tmp_path / "small"
    run_script("-c", "import sys; sys.path.insert(0, 'data/shakespeare_char'); import prepare; "
               f"prepare.prepare({shakespeare_text[:5000]!r}, {str(data)!r})")
    out = str(tmp_path / "run")
    result = run_script("train.py", *TINY, f"--data_dir={data}", f"--out_dir={out}", "--max_iters=20",
                        "--eval_interval=20", "--lr_decay_iters=20")
    assert "4,500 train / 500 val tokens; 512 tokens per iteration x 20 iterations = 10,240 tokens = 2.28 epochs" \
        in result.stdout
    assert "WARNING: this run reads the train split 2.3 times over" in result.stdout
    assert "max_iters <= 8" in result.stdout
    epochs = [r["epoch"] for r in read_metrics(out) if "epoch" in r]
    assert epochs[-1] == pytest.approx(10240 / 4500, abs=1e-3) and epochs == sorted(epochs)


def test_bench_reports_speed(char_dataset):
    result = run_script("bench.py", *TINY, f"--data_dir={char_dataset}", "--real_data=True", "--bench_steps=3")
    assert "2 micro-steps = 512 tokens per step" in result.stdout
    assert "tokens/s, MFU n/a" in result.stdout
    result = run_script("bench.py", *TINY, "--bench_steps=0", check=False)
    assert result.returncode != 0 and result.stderr.strip() == "error: bench_steps must be positive and bench_warmup >= 0"


def test_two_rank_ddp_on_cpu_trains_and_resumes(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    torchrun = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py"]
    args = [*TINY, f"--data_dir={char_dataset}", f"--out_dir={out}", "--data_order=sequential", "--eval_interval=4"]
    run_script(*torchrun, *args, "--max_iters=4")
    checkpoint = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    assert [state["rank"] for state in checkpoint["loader"]] == [0, 1]
    result = run_script(*torchrun, *args, "--max_iters=8", "--init_from=resume")
    assert "resuming from" in result.stdout and "saved" in result.stdout
    assert torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["iter_num"] == 8
    assert [r["iter"] for r in read_metrics(out) if "loss" in r] == [4, 5, 8]
