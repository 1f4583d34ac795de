import json
import math
import os
import sys
import types

import pytest
import torch

import sample
import train
from conftest import as_args, cli, run_script, tiny_settings
from fitgpt import distributed, runtime
from fitgpt.errors import ConfigError
from fitgpt.optim import get_lr
from fitgpt.settings import TrainSettings

LR = dict(learning_rate=1e-3, warmup_iters=10, lr_decay_iters=110, min_lr=1e-4)


@pytest.mark.parametrize(
    "it, expected",
    [
        (0, 1e-3 / 11),  # warmup: linear from lr/(warmup+1)
        (9, 1e-3 * 10 / 11),
        (10, 1e-3),  # cosine starts at the peak
        (60, 1e-4 + 0.5 * 9e-4),  # halfway down the cosine
        (85, 1e-4 + 0.5 * (1 + math.cos(math.pi * 0.75)) * 9e-4),
        (110, 1e-4),  # end of decay
        (500, 1e-4),  # flat afterwards
    ],
)
def test_lr_schedule(it, expected):
    assert get_lr(it, TrainSettings(**LR)) == pytest.approx(expected, rel=1e-12)


def test_lr_constant_without_decay():
    assert get_lr(50, TrainSettings(decay_lr=False, **LR)) == 1e-3


@pytest.mark.parametrize(
    "schedule, it, expected",
    [
        ("linear", 10, 1e-3),
        ("linear", 60, 1e-3 - 0.5 * 9e-4),  # halfway down the line
        ("linear", 110, 1e-4),
        ("wsd", 5, 1e-3 * 6 / 11),  # the same warmup
        ("wsd", 87, 1e-3),  # stable up to the last 20 % (22 iterations) of 110
        ("wsd", 88, 1e-3),  # the decay starts at the peak ...
        ("wsd", 99, 1e-3 - 0.5 * 9e-4),  # ... and is halfway down after 11 of its 22 iterations
        ("wsd", 110, 1e-4),
    ],
)
def test_linear_and_wsd_schedules(schedule, it, expected):
    assert get_lr(it, TrainSettings(lr_schedule=schedule, **LR)) == pytest.approx(expected, rel=1e-12)


def test_wsd_budgets_share_their_learning_rates_until_the_shorter_one_decays():
    """Why a stable-phase checkpoint of a long wsd run can be branched into a shorter budget."""
    long_run = TrainSettings(**{**LR, "lr_decay_iters": 1000}, lr_schedule="wsd")
    short_run = TrainSettings(**{**LR, "lr_decay_iters": 400}, lr_schedule="wsd")
    decay_start = 400 - round(0.2 * 400)
    assert all(get_lr(it, long_run) == get_lr(it, short_run) for it in range(decay_start))
    assert get_lr(decay_start + 1, short_run) < get_lr(decay_start + 1, long_run)


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_train_resume_sample_end_to_end(char_dataset, tmp_path, capsys):
    """The script with a config file, as the README runs it; then resume and sample in-process."""
    out = str(tmp_path / "run")
    settings = tiny_settings(data_dir=char_dataset, out_dir=out, lr_decay_iters=60, eval_interval=20, max_iters=40)
    result = run_script("train.py", "config/shakespeare_char.py", *as_args(settings))
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
    assert ckpt["model_args"]["vocab_size"] == 62 and ckpt["model_args"]["vocab_multiple"] == 1  # the config's
    assert "optimizer" in ckpt

    final = train.run(tiny_settings(init_from="resume", out_dir=out, max_iters=60), {"max_iters": 60})
    assert "resuming from" in capsys.readouterr().out
    assert final["iter"] == 60 and final["best_val_loss"] <= evals[-1]["val_loss"]
    assert [r["iter"] for r in read_metrics(out) if "loss" in r][-4:] == [45, 50, 55, 60]
    assert torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["iter_num"] == 60

    code, stdout, _ = cli(
        sample.main,
        [f"--out_dir={out}", "--num_samples=2", "--max_new_tokens=50", "--start=ROMEO:", "--device=cpu"],
        capsys,
    )
    assert code == 0 and stdout.count("ROMEO:") == 2 and len(stdout) > 2 * 50


def test_run_returns_final_metrics_and_leaves_the_module_defaults_alone(char_dataset, tmp_path):
    before = train.batch_size
    final = train.run(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "run")))
    assert final["iter"] == 20 and final["tokens"] == 20 * 2 * 8 * 32 and final["skipped"] == 0
    assert final["best_val_loss"] == final["val_loss"] < math.log(62)  # better than uniform over 62 characters
    assert train.batch_size == before


@pytest.mark.slow
def test_compiled_model_checkpoint_has_clean_names(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    train.run(
        tiny_settings(compile=True, data_dir=char_dataset, out_dir=out, max_iters=2, eval_interval=2, eval_iters=1)
    )
    ckpt = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)
    assert ckpt["iter_num"] == 2 and not any("_orig_mod" in k for k in ckpt["model"])


def test_bad_setting_is_one_line_error(tmp_path, capsys):
    code, _, stderr = cli(train.main, ["--batch_sise=4"], capsys)
    assert code == 2
    assert stderr.startswith("error: argument '--batch_sise=4': unknown setting 'batch_sise'; did you mean batch_size")
    assert len(stderr.splitlines()) == 1
    code, _, stderr = cli(
        train.main, [f"--data_dir={tmp_path / 'missing'}", f"--out_dir={tmp_path}", "--device=cpu"], capsys
    )
    assert code == 2 and len(stderr.splitlines()) == 1
    assert f"no train shards in {tmp_path / 'missing'} (or the folder does not exist)" in stderr


def test_help_lists_settings(capsys):
    code, stdout, _ = cli(train.main, ["--help"], capsys)
    assert (
        code == 0
        and stdout.startswith("Train a GPT")
        and "  --batch_size=16  (int) micro-batch size per rank" in stdout
    )


def test_epoch_alarms_once_each_across_a_resume(shakespeare_text, tmp_path, capsys):
    sys.path.insert(0, "data/shakespeare_char")
    try:
        from prepare import prepare
    finally:
        sys.path.pop(0)
    data = str(tmp_path / "small")
    prepare(shakespeare_text[:5000], data)
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=data, out_dir=out, max_iters=10))
    stdout = capsys.readouterr().out
    assert (
        "4,500 train / 500 val tokens; 512 tokens per iteration x 10 iterations = 5,120 tokens = 1.14 epochs" in stdout
    )
    assert (
        "ALARM epochs_planned at iteration 0: this run reads the train split 1.1 times over (5,120 tokens planned, "
        "4,500 in the split); past one epoch val loss plateaus and the model memorises. Usual fix: more or "
        "deduplicated data (at least 5,120 tokens), or fewer iterations (max_iters <= 8 stays within one epoch)"
    ) in stdout
    assert "ALARM epoch_1 at iteration 10: epoch 1 done: 5,120 tokens seen" in stdout

    train.run(tiny_settings(data_dir=data, out_dir=out, init_from="resume", max_iters=20), {"max_iters": 20})
    stdout = capsys.readouterr().out
    assert "epochs_planned" not in stdout and "epoch_1" not in stdout  # raised before the checkpoint
    assert "ALARM epoch_2 at iteration 20: epoch 2 done: 10,240 tokens seen, 2 passes over the train split" in stdout
    records = read_metrics(out)
    assert [(r["iter"], r["alarm"]) for r in records if "alarm" in r] == [
        (0, "epochs_planned"),
        (10, "epoch_1"),
        (20, "epoch_2"),
    ]
    epochs = [r["epoch"] for r in records if "loss" in r]
    assert epochs[-1] == pytest.approx(10240 / 4500, abs=1e-3) and epochs == sorted(epochs)


def test_wandb_gets_every_record_including_the_first_evaluation(char_dataset, tmp_path, monkeypatch):
    logged = []
    run = types.SimpleNamespace(log=lambda record, step: logged.append((step, record)), finish=lambda: None)
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=lambda **kwargs: run))
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out, wandb_log=True))
    assert logged[0][0] == 0 and "val_loss" in logged[0][1]
    assert [record for _, record in logged] == read_metrics(out)


@pytest.mark.parametrize(
    "device, local_rank, cuda, expected",
    [
        ("cuda", 3, True, "cuda:3"),  # every rank its own GPU, not all of them on cuda:0
        ("auto", 1, True, "cuda:1"),
        ("cuda:0", 1, True, "cuda:0"),  # an explicit index is the user's choice
        ("auto", 1, False, "auto"),  # no GPU: runtime.py picks the CPU
        ("cpu", 2, True, "cpu"),
    ],
)
def test_each_rank_gets_its_own_gpu(device, local_rank, cuda, expected):
    assert distributed.rank_device(device, local_rank, cuda) == expected


def test_micro_steps_divide_among_ranks():
    assert distributed.micro_steps_per_rank(32, 8) == 4
    with pytest.raises(
        ConfigError, match=r"gradient_accumulation_steps \(3\) must be divisible by the world size \(2\)"
    ):
        distributed.micro_steps_per_rank(3, 2)


def test_the_run_checks_its_plan_once(char_dataset, tmp_path, capsys, monkeypatch):
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out))
    stdout = capsys.readouterr().out
    # once, at the second logged step (the first lap holds the compilation); a CPU has no allocator to read
    assert stdout.count("plan check at iteration 10: MFU not known") == 1
    assert "memory is not measured on this device (no GPU allocator to read)" in stdout
    check = json.load(open(os.path.join(out, "config.json")))["plan_check"]
    assert check["iter"] == 10 and check["measured_allocated_gib"] is None and check["predicted_reserved_gib"] > 0
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    assert [r["plan_check_predicted_allocated_gib"] for r in rows if "plan_check_predicted_allocated_gib" in r] == [
        check["predicted_allocated_gib"]
    ]
    # on a GPU: the measured peaks beside the predicted ones, and a warning when they are 10 % apart
    monkeypatch.setattr(runtime, "peak_memory", lambda device: (0.5 * 2**30, 0.6 * 2**30))
    train.run(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "gpu")))
    stdout = capsys.readouterr().out
    assert "peak allocated 0.50 GiB measured, " in stdout and "peak reserved 0.60 GiB measured, " in stdout
    assert "WARNING: the memory model is off for this run (allocated " in stdout


def test_memory_check_warn_starts_a_run_refuse_would_not(char_dataset, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(runtime, "free_memory", lambda device: 2e6)  # 2 MB free: nothing fits
    with pytest.raises(ConfigError, match="or memory_check='warn' to start it anyway"):
        train.run(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "refused")))
    final = train.run(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "warned"), memory_check="warn"))
    assert final["iter"] == 20 and "starting anyway (memory_check='warn')" in capsys.readouterr().out
    final = train.run(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "off"), memory_check="off"))
    assert final["iter"] == 20 and "WARNING: predicted peak" not in capsys.readouterr().out


def test_the_device_line_names_the_platform_and_the_attention_kernel(monkeypatch):
    assert runtime.device_line("cpu", "fp32", 64) == "device cpu, fp32"
    assert runtime.attention_backend("cpu", "fp32", 64) in ("flash_attention", "math", "efficient_attention")
    monkeypatch.setattr(runtime, "device_name", lambda device: "AMD Instinct MI300X")
    monkeypatch.setattr(runtime, "attention_backend", lambda *args: "efficient_attention")
    monkeypatch.setattr(torch.version, "hip", "6.4.43483")
    monkeypatch.setattr(torch.backends.cuda, "preferred_rocm_fa_library", lambda: "aotriton")
    assert runtime.device_line("cuda:0", "bf16", 64) == (
        "device cuda:0 (AMD Instinct MI300X, ROCm (HIP 6.4.43483)), bf16; attention: SDPA efficient_attention "
        "(ROCm flash-attention library: aotriton)"
    )
