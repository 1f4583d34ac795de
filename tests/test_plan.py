"""plan.py and the planner: arithmetic, JSON, written configs, every shipped config's header, and
train.py's refusal to start a run that will not fit."""

import glob
import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch

import configurator
import plan
import train
from conftest import ROOT, TINY, cli, tiny_settings
from fitgpt import accounting, planner
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError
from fitgpt.settings import TrainSettings
from model import GPT


def test_flops_and_scaling_arithmetic():
    c = GPTConfig()  # GPT-2 small at 50304 rows
    assert accounting.flops_per_token(c) == 6 * (12 * 12 * 768**2 + 50304 * 768) + 12 * 12 * 768 * 1024
    llama = GPTConfig(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_heads=4)
    per_layer = 768 * (12 + 8) * 64 + 768 * 768 + 3 * 768 * 2048  # q + k, v of 4 heads; out; 3 SwiGLU matrices
    assert accounting.flops_per_token(llama) == 6 * (12 * per_layer + 50304 * 768) + 12 * 12 * 768 * 1024
    assert planner.effective_tokens(5e9, 10e9) == 5e9  # under one epoch every token is new
    four = planner.effective_tokens(40e9, 10e9)  # 4 epochs are worth about 3.7
    assert four == pytest.approx(10e9 * (1 + 15.4 * (1 - math.exp(-3 / 15.4))))
    assert 3.6e10 < four < 3.8e10 and planner.effective_tokens(1e15, 10e9) < 16.5 * 10e9
    e, a, b, alpha, beta = 1.69, 406.4, 410.7, 0.34, 0.28
    assert planner.predicted_loss(1e9, 20e9) == pytest.approx(e + a / 1e9**alpha + b / 20e9**beta)
    assert planner.learning_rate_for(125e6) == pytest.approx(6e-4) and planner.learning_rate_for(13e9) == pytest.approx(
        1e-4
    )
    assert 2e-4 < planner.learning_rate_for(1e9) < 2.5e-4


def test_largest_micro_batch_is_the_boundary():
    config, device = GPTConfig(n_layer=48, n_embd=1600, n_head=25, bias=False), planner.device_for("h100")
    b = planner.max_micro_batch(config, device)
    usable = accounting.usable_memory(device.memory_gib)
    assert accounting.training_memory(config, b).total <= usable < accounting.training_memory(config, b + 1).total


def run_plan(capsys, *argv):
    code, stdout, stderr = cli(plan.main, list(argv), capsys)
    assert code == 0, stderr
    return stdout


def test_evaluate_json_keys(capsys):
    out = json.loads(run_plan(capsys, "--gpu", "h100", "--batch_size=8", "--json"))
    assert {"params", "peak_memory_gib", "fits", "max_micro_batch", "tokens_per_s", "hours", "memory"} <= out.keys()
    assert out["params"] == 124_373_760 and out["fits"] and out["max_micro_batch"] > 8
    assert set(out["memory"]) == {
        "weights",
        "gradients",
        "optimizer",
        "weight_copies",
        "activations",
        "logits",
        "overhead",
    }


def test_search_recommends_the_compute_optimal_model_or_the_best_in_the_time(capsys):
    out = json.loads(run_plan(capsys, "--gpu", "mi300x", "--tokens", "14.6e9", "--json"))
    one_epoch = [c for c in out["candidates"] if c["total_tokens"] <= 14.6e9]
    assert out["params"] == max(c["params"] for c in one_epoch) and out["params"] < 14.6e9 / 20
    assert {"n_layer", "n_head", "n_embd", "predicted_loss"} <= out["candidates"][0].keys()
    timed = json.loads(run_plan(capsys, "--gpu", "mi300x", "--tokens", "14.6e9", "--hours", "72", "--json"))
    assert timed["predicted_loss"] == min(c["predicted_loss"] for c in timed["candidates"])
    assert all(abs(c["hours"] - 72) < 0.1 for c in timed["candidates"])
    assert "lowest predicted loss in 72 h" in timed["recommendation"]
    # a time budget alone: fresh data assumed, so no repeat discount and every loss at most the above
    unlimited = json.loads(run_plan(capsys, "--gpu", "mi300x", "--hours", "72", "--json"))
    assert unlimited["epochs"] is None and abs(unlimited["hours"] - 72) < 0.1
    losses = {c["params"]: c["predicted_loss"] for c in timed["candidates"]}
    assert all(c["predicted_loss"] <= losses[c["params"]] for c in unlimited["candidates"])
    assert unlimited["predicted_loss"] == min(c["predicted_loss"] for c in unlimited["candidates"])


def test_plan_needs_no_torch_and_refuses_unknown_gpus(capsys):
    code = (
        "import runpy, sys; sys.argv = ['plan.py', '--gpu', 'rtx4090', '--tokens', '10e9']; "
        "runpy.run_path('plan.py', run_name='__main__'); assert 'torch' not in sys.modules"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "recommended: " in result.stdout
    code, _, stderr = cli(plan.main, ["--gpu", "h1000", "--tokens", "1e9"], capsys)
    assert code == 2 and stderr.startswith("error: unknown --gpu 'h1000'; use one of h100, h100-pcie")


def test_written_config_trains(capsys, tmp_path, char_dataset):
    path = tmp_path / "rec.py"
    run_plan(capsys, "--gpu", "rtx4090", "--tokens", "1e9", "--write", str(path))
    written = configurator.read_config_file(str(path), TrainSettings)
    assert written["max_iters"] * written["batch_size"] * written["gradient_accumulation_steps"] * 1024 <= 1e9
    settings = TrainSettings(
        **{
            **written,
            **TINY,
            "data_dir": char_dataset,
            "out_dir": str(tmp_path / "out"),
            "max_iters": 2,
            "eval_interval": 2,
            "warmup_iters": 1,
        }
    )
    assert train.run(settings)["iter"] == 2


HEADER = re.compile(
    r"^# Model: ([\d,]+) parameters.*\n# Predicted peak memory ([\d.]+) GiB .*?: python plan\.py "
    r"(\S+) (.*)$",
    re.M,
)


@pytest.mark.parametrize(
    "path", sorted(glob.glob(os.path.join(ROOT, "config", "*.py"))), ids=lambda p: os.path.basename(p)
)
def test_config_parameter_counts_and_headers(path, capsys):
    settings = TrainSettings(**configurator.read_config_file(path, TrainSettings))
    vocab = settings.vocab_size or (32000 if "tinystories" in path else 65 if "shakespeare" in path else 50257)
    config = GPTConfig.from_settings(settings, vocab_size=vocab)
    with torch.device("meta"):
        assert sum(p.numel() for p in GPT(config).parameters()) == accounting.param_count(config)
    text = open(path, encoding="utf-8").read()
    header = HEADER.search(text)
    if "fineweb" in path or "gpt2" in path:  # every config users asked for states its plan
        assert header, f"{path} has no plan header"
    if header:
        assert int(header.group(1).replace(",", "")) == accounting.param_count(config)
        out = json.loads(run_plan(capsys, path, *header.group(4).split(), "--json"))
        assert out["fits"] and abs(out["peak_memory_gib"] - float(header.group(2))) < 0.15


def test_startup_refuses_a_run_that_cannot_fit(char_dataset, tmp_path, monkeypatch):
    config = GPTConfig(n_layer=48, n_embd=2560, n_head=32, bias=False)
    settings = TrainSettings(batch_size=32, gradient_accumulation_steps=64)
    _, refusal = planner.startup_summary(config, settings, 1, "bf16", 989e12, 79 * 2**30)
    assert refusal.startswith(
        "predicted peak memory 217.0 GiB exceeds the 79.0 GiB free on the device at "
        "batch_size=32; use batch_size=1 with gradient_accumulation_steps=2048 (the same "
        "tokens per step), or activation_checkpointing=1"
    )
    monkeypatch.setattr(train, "free_memory", lambda device: 2e6)  # a device with 2 MB free
    with pytest.raises(
        ConfigError,
        match="exceeds the 0.0 GiB free on the device at batch_size=8; the model does "
        "not fit this GPU even at batch_size=1",
    ):
        train.run(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "run")))


def test_a_13b_model_needs_fsdp_on_eight_h100s(capsys):
    out = json.loads(run_plan(capsys, "--gpu", "h100", "--gpus", "8", "--tokens", "300e9", "--json"))
    biggest = max(out["candidates"], key=lambda c: c["params"])
    assert biggest["params"] > 12e9 and biggest["parallelism"] == "fsdp" and biggest["fits"]
    small = min(out["candidates"], key=lambda c: c["params"])
    assert small["parallelism"] == "ddp"
