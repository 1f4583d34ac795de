"""plan.py and the planner: the law and its compute-optimal sizes against Chinchilla's table 3,
the shape family, FLOPs and hours budgets, both repeat decays, the batch, MFU per GPU, units, bad
input, JSON, written configs, every shipped config's header and docs/sizing.md's outputs, and
train.py's refusal to start a run that will not fit."""

import dataclasses
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
from fitgpt import flops, formatting, hardware, memory, planner, runtime, scaling, startup
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError
from fitgpt.settings import TrainSettings
from model import GPT


def run_plan(capsys, *argv):
    code, stdout, stderr = cli(plan.main, list(argv), capsys)
    assert code == 0, stderr
    return stdout


def plan_json(capsys, *argv):
    return json.loads(run_plan(capsys, *argv, "--json"))


def test_flops_and_scaling_arithmetic():
    c = GPTConfig()  # GPT-2 small at 50304 rows
    assert flops.flops_per_token(c) == 6 * (12 * 12 * 768**2 + 50304 * 768) + 12 * 12 * 768 * 1024
    llama = GPTConfig(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, n_kv_heads=4)
    per_layer = 768 * (12 + 8) * 64 + 768 * 768 + 3 * 768 * 2048  # q + k, v of 4 heads; out; 3 SwiGLU matrices
    assert flops.flops_per_token(llama) == 6 * (12 * per_layer + 50304 * 768) + 12 * 12 * 768 * 1024
    assert scaling.learning_rate_for(125e6) == pytest.approx(6e-4) and scaling.learning_rate_for(13e9) == pytest.approx(
        1e-4
    )
    assert 2e-4 < scaling.learning_rate_for(1e9) < 2.5e-4


def test_the_laws_constants_and_which_ranks(capsys):
    law = scaling.DEFAULT_LAW
    assert (law.E, law.A, law.B, law.alpha, law.beta) == (1.8172, 482.01, 2085.43, 0.3478, 0.3658)
    old = scaling.law_named("chinchilla3")
    assert (old.E, old.A, old.B, old.alpha, old.beta) == (1.69, 406.4, 410.7, 0.34, 0.28)
    assert scaling.law_named("hoffmann") is old and scaling.law_named("BESIROGLU") is law
    assert scaling.predicted_loss(1e9, 20e9) == pytest.approx(1.8172 + 482.01 / 1e9**0.3478 + 2085.43 / 20e9**0.3658)
    # eq. 4 and its inverse: the optimum's tokens give back its parameters
    n, d = law.compute_optimal(1e21)
    assert law.params_for(d) == pytest.approx(n) and 6 * n * d == pytest.approx(1e21)
    # the output names the law that ranked the options; the published approach-3 fit picks smaller models
    assert "losses: Besiroglu et al. 2024's refit of Chinchilla" in run_plan(capsys, "--flops", "1e20")
    assert "losses: Chinchilla's approach 3 as published" in run_plan(capsys, "--flops", "1e20", "--law", "hoffmann")
    default = plan_json(capsys, "--flops", "1.21e20", "--tokens", "1e12")
    published = plan_json(capsys, "--flops", "1.21e20", "--tokens", "1e12", "--law", "chinchilla3")
    assert default["law"].startswith("Besiroglu") and published["law"].startswith("Chinchilla's approach 3")
    assert published["params"] < 0.85 * default["params"]


# Hoffmann et al. 2022, table 3, approach 1: (FLOPs, parameters, tokens)
CHINCHILLA_TABLE3 = [(1.92e19, 400e6, 8.0e9), (1.21e20, 1e9, 20.2e9), (1.23e22, 10e9, 205.1e9), (5.76e23, 67e9, 1.5e12)]


@pytest.mark.parametrize("flops, params, tokens", CHINCHILLA_TABLE3, ids=lambda x: f"{x:.3g}")
def test_compute_optimal_matches_chinchilla_table3(flops, params, tokens, capsys):
    out = plan_json(capsys, "--flops", f"{flops:g}", "--tokens", "1e13")
    assert abs(out["params"] / params - 1) <= 0.20 and abs(out["total_tokens"] / tokens - 1) <= 0.25
    assert out["binding"] == "compute" and 0.95 * flops <= out["train_flops"] <= flops
    assert out["fits"] is None and out["hours"] is None  # no GPU named: no memory or time figures


def test_the_shape_family_is_continuous_and_keeps_gpt2s_sizes(capsys):
    sizes = [flops.param_count(planner.shape_config(s, "gpt2", 50257)) for s in planner.FAMILY]
    assert sizes == sorted(sizes) and len(set(sizes)) == len(sizes)  # monotone in parameters
    assert sizes[0] < 10e6 and sizes[-1] > 70e9
    assert max(b / a for a, b in zip(sizes, sizes[1:])) <= 1.3
    for n_layer, n_embd, n_head in planner.FAMILY:
        assert n_embd % n_head == 0 and n_embd // n_head in (32, 64, 128)
        assert abs(n_embd / n_layer - 64) <= 32  # width from depth at a fixed aspect ratio
    llama = [flops.param_count(planner.shape_config(s, "llama", 50257)) for s in planner.FAMILY]
    assert llama == sorted(llama)
    table = run_plan(capsys, "--flops", "1e20")
    for name in ("GPT-2 small", "GPT-2 medium", "GPT-2 large", "GPT-2 XL"):
        assert name in table
    # the rows around the optimum: the best among them, smaller and larger ones beside it
    rows = plan_json(capsys, "--flops", "1e20")["candidates"]
    best = plan_json(capsys, "--flops", "1e20")
    assert min(r["params"] for r in rows) < best["params"] / 2 and max(r["params"] for r in rows) > 2 * best["params"]


def test_flops_and_hours_budgets_round_trip(capsys):
    # 24 h on 8 H100s at the measured 40 % is a FLOPs budget: both answers are the same run
    flops = 24 * 3600 * 8 * 0.40 * 989.4e12
    timed = plan_json(capsys, "--gpu", "h100", "--gpus", "8", "--hours", "24", "--tokens", "1e12")
    budget = plan_json(capsys, "--gpu", "h100", "--gpus", "8", "--flops", f"{flops:.6e}", "--tokens", "1e12")
    assert timed["params"] == budget["params"] and timed["binding"] == "time" and budget["binding"] == "compute"
    assert timed["hours"] <= 24 and timed["train_flops"] <= flops * 1.0001
    assert budget["train_flops"] <= flops and budget["hours"] == pytest.approx(timed["hours"], rel=0.01)
    assert timed["budget"] == {"flops": None, "hours": 24.0}
    # both at once: the smaller binds
    both = plan_json(capsys, "--gpu", "h100", "--hours", "1000", "--flops", "1e19", "--tokens", "1e12")
    assert both["binding"] == "compute" and both["hours"] < 1000 and both["train_flops"] <= 1e19


def test_every_recommendation_fits_keeps_its_budget_and_its_batch(capsys):
    cases = [
        ("--gpu", "mi300x", "--tokens", "14.6e9", "--hours", "72"),
        ("--gpu", "rtx4090", "--tokens", "10e9"),
        ("--gpu", "rtx4070", "--hours", "200", "--arch", "llama"),
        ("--gpu", "h100", "--gpus", "8", "--flops", "1e22"),
        ("--gpu", "a100-40", "--gpus", "3", "--hours", "10", "--tokens", "1e9"),
        ("--gpu", "mi300x", "--gpus", "8", "--flops", "1e17"),  # tiny models on many GPUs
    ]
    for argv in cases:
        out = plan_json(capsys, *argv)
        gpus = int(argv[argv.index("--gpus") + 1]) if "--gpus" in argv else 1
        budget = out["budget"]
        assert out["fits"], argv
        assert budget["hours"] is None or out["hours"] <= budget["hours"]
        assert budget["flops"] is None or out["train_flops"] <= budget["flops"]
        for c in [out, *out["candidates"]]:
            step = c["batch_size"] * c["gradient_accumulation_steps"] * 1024
            assert step == c["tokens_per_step"] and c["gradient_accumulation_steps"] % gpus == 0
            assert c["batch_size"] * gpus * 1024 <= c["tokens_per_step"]  # never a micro-batch above the step
            if c["fits"] and c["total_tokens"] >= 100 * scaling.tokens_per_step_for(c["params"]):
                assert 0.9 <= step / scaling.tokens_per_step_for(c["params"]) <= 1.1, (argv, c["params"])


def test_the_batch_is_the_step_by_model_size_capped_by_memory():
    assert planner.batch_layout(512, 4096, 1) == (512, 1)  # a 16M model on an MI300X: no more than the step
    assert planner.batch_layout(512, 4096, 8) == (64, 8)  # 8 GPUs share the step: still 0.5M tokens
    assert planner.batch_layout(512, 22, 1) == (16, 32)  # memory caps it: a power of two that fits
    assert planner.batch_layout(2048, 1, 1) == (1, 2048)
    micro, accumulation = planner.batch_layout(512, 4096, 3)  # 3 GPUs: within 10 % of the step
    assert abs(micro * accumulation / 512 - 1) <= 0.1 and accumulation % 3 == 0
    assert scaling.tokens_per_step_for(124e6) == 2**19 and scaling.tokens_per_step_for(13e9) == 2**21


def test_repeated_data_decays_on_both_sides():
    u = 10e9
    assert scaling.effective_tokens(5e9, u) == 5e9  # under one epoch every token is new
    four = scaling.effective_tokens(40e9, u)  # 4 epochs are worth about 3.7
    assert four == pytest.approx(u * (1 + 15.4 * (1 - math.exp(-3 / 15.4))))
    # counted up to one decay constant: 16.4 epochs and beyond are worth the same
    assert scaling.effective_tokens(1e15, u) == scaling.effective_tokens(16.4 * u, u) < 10.8 * u
    law = scaling.DEFAULT_LAW
    u_n = law.params_for(u)  # the model compute-optimal for the unique data
    assert scaling.effective_params(0.5 * u_n, u) == 0.5 * u_n
    assert scaling.effective_params(3 * u_n, u) == pytest.approx(u_n * (1 + 5.3 * (1 - math.exp(-2 / 5.3))))
    assert scaling.effective_params(100 * u_n, u) == scaling.effective_params(6.3 * u_n, u)
    for n in (1e8, u_n, 4 * u_n, 1e11):  # never better than the same run on fresh data
        for d in (1e9, u, 5 * u, 100 * u):
            assert scaling.predicted_loss(n, d, u) >= scaling.predicted_loss(n, d) - 1e-12


def test_past_what_the_data_supports_compute_goes_to_epochs_then_stops(capsys):
    runs = [plan_json(capsys, "--flops", f"{c:g}", "--tokens", "1e9") for c in (2e17, 2e18, 2e19, 1e20, 1e21, 1e22)]
    sizes = [r["params"] for r in runs]
    assert sizes == sorted(sizes) and sizes[-1] == sizes[-2] == sizes[-3]  # the size stops growing
    assert sizes[-1] < 10 * scaling.DEFAULT_LAW.params_for(1e9)
    epochs = [r["epochs"] for r in runs]
    assert epochs == sorted(epochs) and epochs[-1] <= 1 + scaling.REPEAT_DECAY
    last = runs[-1]
    assert last["binding"] == "data" and last["train_flops"] < 0.01 * 1e22
    assert "the data binds" in last["recommendation"] and "more data would beat more epochs" in last["recommendation"]
    fresh = scaling.predicted_loss(last["params"], last["total_tokens"])
    assert last["predicted_loss"] > fresh + 0.1  # repeats are worth less than fresh data


def test_without_a_budget_the_model_is_compute_optimal_for_the_data(capsys):
    out = plan_json(capsys, "--gpu", "rtx4090", "--tokens", "10e9")
    assert out["epochs"] == pytest.approx(1.0, abs=0.05)  # all of the data, once
    assert abs(out["params"] / scaling.DEFAULT_LAW.params_for(10e9) - 1) < 0.25
    assert out["recommendation"].startswith("compute-optimal for your 10B tokens")
    assert "with 4x the compute" in out["recommendation"]  # what more epochs would buy
    assert all(c["train_flops"] <= out["budget"]["flops"] for c in out["candidates"])


def test_memory_binds_the_options_that_do_not_fit(capsys):
    out = plan_json(capsys, "--gpu", "rtx4070", "--flops", "1e21", "--tokens", "1e12")
    too_big = [c for c in out["candidates"] if not c["fits"]]
    assert too_big and all(c["binding"] == "memory" for c in too_big)
    assert out["fits"] and out["params"] < min(c["params"] for c in too_big)
    assert "do not fit one GPU" in out["recommendation"]
    text = run_plan(capsys, "--gpu", "rtx4070", "--flops", "1e21", "--tokens", "1e12")
    assert "does not fit" in text and " memory " in text


def test_a_13b_model_needs_fsdp_on_eight_h100s(capsys):
    out = plan_json(capsys, "--gpu", "h100", "--gpus", "8", "--tokens", "300e9")
    assert out["params"] > 12e9 and out["parallelism"] == "fsdp" and out["fits"]
    assert "it fits only sharded over the GPUs with FSDP" in out["recommendation"]
    small = min(out["candidates"], key=lambda c: c["params"])
    assert small["parallelism"] == "ddp"


def test_mfu_per_gpu_measured_or_assumed(capsys, monkeypatch):
    h100 = run_plan(capsys, "--gpu", "h100", "--hours", "24")
    assert "MFU: 40% (measured: fitgpt on one H100 SXM" in h100
    mi300x = run_plan(capsys, "--gpu", "mi300x", "--tokens", "14.6e9", "--hours", "72")
    assert "MFU: 16% (assumed: a 2024 ROCm report" in mi300x and "16% MFU, assumed" in mi300x
    out = plan_json(capsys, "--gpu", "mi300x", "--tokens", "14.6e9", "--hours", "72")
    rate = (
        0.16
        * 1307.4e12
        / flops.flops_per_token(planner.shape_config((out["n_layer"], out["n_embd"], out["n_head"]), "gpt2", 50257))
    )
    assert out["tokens_per_s"] == pytest.approx(rate, rel=1e-3)
    assert "assumed" in run_plan(capsys, "config/fineweb_3b_mi300x.py", "--gpu", "mi300x")
    overridden = plan_json(capsys, "--gpu", "mi300x", "--hours", "72", "--mfu", "0.35")
    assert overridden["mfu"] == 0.35 and overridden["mfu_source"] == "set with --mfu"
    for gpu in hardware.GPUS:  # every entry says where its figure comes from
        mfu, source = gpu.mfu
        assert 0 < mfu <= 0.5 and source.startswith("measured" if gpu.key == "h100" else "assumed")
    # one hook: a calibration replacing mfu_for changes plan.py and train.py's start-up alike
    monkeypatch.setattr(hardware, "mfu_for", lambda device, params, override=None: (0.5, "measured: calibration"))
    assert plan_json(capsys, "--gpu", "rtx4090", "--hours", "10")["mfu"] == 0.5
    lines, _ = startup.startup_summary(
        GPTConfig(),
        TrainSettings(),
        dtype="bf16",
        world_size=1,
        peak_flops=165.2e12,
        free_bytes=None,
        device_name="NVIDIA RTX 4090",
    )
    assert "at 50% MFU (measured)" in lines[0]


def test_units_vram_in_decimal_gb_and_every_output_says_which(capsys):
    device = hardware.device_for(None, 16, 100)
    assert device.memory_gib == pytest.approx(16e9 / 2**30)  # 14.9 GiB, not 16
    out = plan_json(capsys, "--vram_gb", "16", "--peak_tflops", "100", "--tokens", "1e9")
    assert out["usable_memory_gib"] == pytest.approx(memory.usable_memory(16e9 / 2**30) / 2**30, abs=0.01)
    assert hardware.device_for("rtx4090", 16).memory_gib == pytest.approx(14.9, abs=0.01)
    search = run_plan(capsys, "--vram_gb", "16", "--peak_tflops", "100", "--tokens", "1e9")
    assert "a 16 GB (14.9 GiB) GPU" in search and "GiB usable" in search and "GiB rsvd" in search
    evaluate = run_plan(capsys, "--gpu", "rtx4080", "--batch_size=4")
    assert "GPU: 1 x GeForce RTX 4080 16GB (13.9 GiB usable each)" in evaluate
    for line in evaluate.splitlines():  # every memory figure says its unit
        if "memory" in line or "weights" in line:
            assert "GiB" in line, line


BAD = [("--tokens", v) for v in ("-5", "0", "abc", "nan")] + [
    ("--hours", "-3"),
    ("--hours", "0"),
    ("--hours", "x"),
    ("--flops", "-1e20"),
    ("--flops", "0"),
    ("--flops", "inf"),
    ("--mfu", "0"),
    ("--mfu", "1.5"),
    ("--mfu", "-0.4"),
    ("--mfu", "forty"),
    ("--gpus", "0"),
    ("--gpus", "-2"),
    ("--gpus", "1.5"),
    ("--usd_per_gpu_hour", "-1"),
    ("--vram_gb", "0"),
    ("--peak_tflops", "-100"),
]


@pytest.mark.parametrize("flag, value", BAD, ids=lambda x: x)
def test_bad_input_is_one_line_naming_the_flag_and_its_range(flag, value, capsys):
    for argv in ([f"{flag}={value}", "--gpu", "h100"], [flag, value, "--gpu", "h100"]):
        code, stdout, stderr = cli(plan.main, argv, capsys)
        assert code == 2 and not stdout and len(stderr.strip().splitlines()) == 1, (argv, stderr)
        assert stderr.startswith(f"error: argument {flag}: must be ") and re.search(r"(> |>= |in \()", stderr)


def test_other_bad_input(capsys):
    for argv, message in [
        (["--law", "nonsense", "--tokens", "1e9"], "--law nonsense: use besiroglu"),
        (["--gpu", "h1000", "--tokens", "1e9"], "unknown --gpu 'h1000'; use one of h100, h100-pcie"),
        (["config/train_fineweb.py", "--flops", "1e20"], "--flops and --hours choose a model"),
        (["--flops", "1e20", "--tokens", "1e9", "--write", "x.py"], "--write needs --gpu"),
        (["--gpu", "h100", "--bogus_setting=3"], "unknown setting 'bogus_setting'"),
        (["--vram-gb", "16", "--peak_tflops", "100"], "unrecognized argument --vram-gb; did you mean --vram_gb?"),
        (["--gpu", "h100", "--batch-size=8"], "unknown setting 'batch-size'; did you mean batch_size?"),
        (["--flops", "1e10"], "not one step of 1,024 tokens of the smallest model fits in this budget"),
        (["--tokens", "100"], "give more --flops, --hours or --tokens"),
    ]:
        code, _, stderr = cli(plan.main, argv, capsys)
        assert code == 2 and message in stderr and len(stderr.strip().splitlines()) == 1, stderr


def test_help_lists_the_settings_it_takes_with_defaults():
    result = subprocess.run([sys.executable, "plan.py", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0
    for line in (
        "--n_layer=12  (int)",
        "--compile=True",
        "--bias=False",
        "--norm='layernorm'",
        "--activation_checkpointing=0",
        "--batch_size=16",
        "--optimizer='adamw'",
        "--flops FLOPS",
        "--law LAW",
        "--usd_per_gpu_hour",
    ):
        assert line in result.stdout, line
    assert "--eval_interval" not in result.stdout  # train.py's settings that change no plan are not listed


def test_cost_in_the_table_and_the_recommendation(capsys):
    out = plan_json(capsys, "--gpu", "h100", "--gpus", "4", "--hours", "10", "--usd_per_gpu_hour", "2.5")
    for c in [out, *out["candidates"]]:
        assert c["usd"] == pytest.approx(c["hours"] * 4 * 2.5, abs=0.01)
    assert f"about ${out['usd']:,.0f}" in out["recommendation"]
    text = run_plan(capsys, "--gpu", "h100", "--gpus", "4", "--hours", "10", "--usd_per_gpu_hour", "2.5")
    assert "USD" in text.splitlines()[4]
    assert "$" in run_plan(capsys, "config/train_fineweb.py", "--gpu", "rtx4070", "--usd_per_gpu_hour", "0.3")
    assert plan_json(capsys, "--gpu", "h100", "--hours", "10")["usd"] is None


def test_evaluate_json_keys(capsys):
    out = plan_json(capsys, "--gpu", "h100", "--batch_size=8")
    assert {"params", "peak_memory_gib", "fits", "max_micro_batch", "tokens_per_s", "hours", "memory"} <= out.keys()
    assert out["params"] == 124_373_760 and out["fits"] and out["max_micro_batch"] > 8
    assert out["mfu"] == 0.40 and out["mfu_source"].startswith("measured")
    assert set(out["memory"]) == {
        "weights",
        "gradients",
        "optimizer",
        "weight_copies",
        "activations",
        "logits",
        "overhead",
    }


def test_plan_needs_no_torch_and_answers_within_a_second():
    code = (
        "import runpy, sys, time; start = time.process_time(); "
        "sys.argv = ['plan.py', '--gpu', 'mi300x', '--tokens', '14.6e9', '--hours', '72']; "
        "runpy.run_path('plan.py', run_name='__main__'); assert 'torch' not in sys.modules; "
        "print('seconds', time.process_time() - start)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "recommended: " in result.stdout
    assert float(result.stdout.split("seconds")[-1]) < 1.0  # CPU seconds: a busy machine does not fail it


def test_written_config_trains(capsys, tmp_path, char_dataset):
    path = tmp_path / "rec.py"
    run_plan(capsys, "--gpu", "rtx4090", "--tokens", "1e9", "--write", str(path))
    written = configurator.read_config_file(str(path), TrainSettings)
    assert written["max_iters"] * written["batch_size"] * written["gradient_accumulation_steps"] * 1024 <= 1.1e9
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
TIME = re.compile(r"^# Time: ([\d.]+)B tokens, (\S+) FLOPs, about ([\d,]+) h .* at (\d+)% MFU \((\w+)\)$", re.M)
WRITTEN = re.compile(r"^# Written by plan.py on [\d-]+: python plan\.py (.*)$", re.M)
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "config", "*.py")))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: os.path.basename(p))
def test_config_parameter_counts_and_headers(path, capsys, tmp_path):
    settings = TrainSettings(**configurator.read_config_file(path, TrainSettings))
    vocab = settings.vocab_size or (32000 if "tinystories" in path else 65 if "shakespeare" in path else 50257)
    config = GPTConfig.from_settings(settings, vocab_size=vocab)
    with torch.device("meta"):
        assert sum(p.numel() for p in GPT(config).parameters()) == flops.param_count(config)
    text = open(path, encoding="utf-8").read()
    header = HEADER.search(text)
    if "fineweb" in path or "gpt2" in path:  # every config users asked for states its plan
        assert header, f"{path} has no plan header"
    if not header:
        return
    assert int(header.group(1).replace(",", "")) == flops.param_count(config)
    out = plan_json(capsys, path, *header.group(4).split())
    assert out["fits"] and abs(out["peak_memory_gib"] - float(header.group(2))) < 0.05
    time = TIME.search(text)
    if time:  # a hand-written config's time line is plan.py's figures
        assert f"{out['total_tokens'] / 1e9:.3g}" == time.group(1) and f"{out['train_flops']:.3g}" == time.group(2)
        assert round(out["hours"]) == int(time.group(3).replace(",", "")) and round(100 * out["mfu"]) == int(
            time.group(4)
        )
        assert out["mfu_source"].startswith(time.group(5))  # measured or assumed
    written = WRITTEN.search(text)
    if written:  # a config plan.py wrote is what the same command writes today
        target = str(tmp_path / os.path.basename(path))
        argv = written.group(1).replace(f"config/{os.path.basename(path)}", target).split()
        run_plan(capsys, *argv)
        again = open(target, encoding="utf-8").read().replace(target, f"config/{os.path.basename(path)}")
        assert WRITTEN.sub("", again) == WRITTEN.sub("", text)


def doc_outputs(path: str) -> list[tuple[list[str], str]]:
    """(plan.py arguments, the output quoted below them) for every command a doc quotes with its output."""
    text = open(path, encoding="utf-8").read()
    pairs = re.findall(r"^    python plan\.py ([^\n]*)\n\n```\n(.*?)```", text, re.M | re.S)
    return [(command.split(), output) for command, output in pairs]


SIZING = doc_outputs(os.path.join(ROOT, "docs", "sizing.md"))


@pytest.mark.parametrize("argv, output", SIZING, ids=["_".join(a)[:60] for a, _ in SIZING])
def test_sizing_doc_quotes_plan_py(argv, output, capsys, tmp_path):
    if "--write" in argv:  # written to a scratch copy: the config's own test checks the file
        i = argv.index("--write")
        argv = [*argv[:i], "--write", str(tmp_path / "c.py"), *argv[i + 2 :]]
        output = re.sub(r" Written to \S+\.\n", " Written to c.py.\n", output)
    got = run_plan(capsys, *argv).replace(str(tmp_path / "c.py"), "c.py")
    assert got == output


def test_sizing_doc_answers_the_users_questions():
    commands = [" ".join(a) for a, _ in SIZING]
    assert any(c.startswith("--gpu mi300x --tokens 14.6e9 --hours 72") for c in commands)
    assert any(c.startswith("--gpu rtx4090 --tokens 10e9") for c in commands)


def test_startup_refuses_a_run_that_cannot_fit(char_dataset, tmp_path, monkeypatch):
    config = GPTConfig(n_layer=48, n_embd=2560, n_head=32, bias=False)
    settings = TrainSettings(batch_size=32, gradient_accumulation_steps=64)
    lines, refusal = startup.startup_summary(
        config, settings, dtype="bf16", world_size=1, peak_flops=989e12, free_bytes=79 * 2**30
    )
    assert "predicted GPU peak 218.10 GiB allocated, 227.92 GiB reserved (79.0 GiB free)" in lines[0]
    assert refusal == (
        "predicted peak memory 227.9 GiB reserved (218.1 GiB allocated) exceeds the 79.0 GiB free on the device at "
        "batch_size=32; use batch_size=1 with gradient_accumulation_steps=2048 (the same "
        "tokens per step), or activation_checkpointing=1; or memory_check='warn' to start it anyway"
    )
    warn = dataclasses.replace(settings, memory_check="warn")
    lines, refusal = startup.startup_summary(
        config, warn, dtype="bf16", world_size=1, peak_flops=989e12, free_bytes=79 * 2**30
    )
    assert refusal is None and lines[1].startswith("WARNING: predicted peak memory 227.9 GiB reserved")
    assert lines[1].endswith("starting anyway (memory_check='warn')")
    off = dataclasses.replace(settings, memory_check="off")
    assert startup.startup_summary(
        config, off, dtype="bf16", world_size=1, peak_flops=989e12, free_bytes=79 * 2**30
    ) == (lines[:1], None)
    # decided on the reserved peak: free memory between the allocated and reserved predictions is refused
    estimate = memory.run_memory(config, settings, "bf16", 1)
    between = (estimate.total + estimate.reserved) / 2
    assert (
        startup.startup_summary(config, settings, dtype="bf16", world_size=1, peak_flops=989e12, free_bytes=between)[1]
        is not None
    )
    assert (
        startup.startup_summary(
            config, settings, dtype="bf16", world_size=1, peak_flops=989e12, free_bytes=estimate.reserved
        )[1]
        is None
    )
    monkeypatch.setattr(runtime, "free_memory", lambda device: 2e6)  # a device with 2 MB free
    with pytest.raises(
        ConfigError,
        match="exceeds the 0.0 GiB free on the device at batch_size=8; the model does "
        "not fit this GPU even at batch_size=1",
    ):
        train.run(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "run")))


def test_train_bench_and_plan_predict_the_same_bytes(capsys):
    import bench
    from fitgpt.settings import BenchSettings

    shape = dict(n_layer=24, n_embd=1024, n_head=16, batch_size=8, gradient_accumulation_steps=4, loss_chunks=4)
    settings = TrainSettings(**shape)
    config = GPTConfig.from_settings(settings, vocab_size=50257)
    expected = memory.run_memory(config, settings, "bf16", 1)  # the one function all three ask
    predicted = bench.predicted_memory(BenchSettings(**shape), config, "bf16", 1)
    assert predicted["predicted_peak_memory_gib"] * formatting.GIB == expected.total
    assert predicted["predicted_peak_reserved_gib"] * formatting.GIB == expected.reserved
    line = startup.startup_summary(config, settings, dtype="bf16", world_size=1, peak_flops=None, free_bytes=None)[0][0]
    assert f"predicted GPU peak {expected.total / 2**30:.2f} GiB allocated, {expected.reserved / 2**30:.2f}" in line
    out = plan_json(capsys, *(f"--{k}={v}" for k, v in shape.items()), "--gpu", "h100")  # no calibration file
    assert out["peak_memory_gib"] == round(expected.total / 2**30, 2)
    assert out["peak_reserved_gib"] == round(expected.reserved / 2**30, 2)
