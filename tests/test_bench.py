"""bench.py: the peak table, the batch-size search, the profile, JSON and comparisons (CPU)."""

import json
import os

import pytest
import torch

import bench
import plan
from conftest import TINY, as_args, cli, tiny_settings
from fitgpt import calibration, flops, hardware, measure, memory, suite
from fitgpt.errors import ConfigError, RunFailure

# names as torch.cuda.get_device_name reports them -> (table key, dense TFLOP/s by precision)
DEVICES = [
    ("NVIDIA H100 80GB HBM3", "h100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9, "fp8": 1978.8}),
    ("NVIDIA H100 PCIe", "h100-pcie", {"bf16": 756.0, "tf32": 378.0, "fp8": 1512.0}),
    ("NVIDIA H100 NVL", "h100-nvl", {"bf16": 835.5, "fp8": 1671.0}),
    ("NVIDIA H200", "h200", {"bf16": 989.4, "fp8": 1978.8}),
    ("NVIDIA H200 NVL", "h200-nvl", {"bf16": 835.5}),
    ("NVIDIA GH200 480GB", "gh200", {"bf16": 989.4}),
    ("NVIDIA B200", "b200", {"bf16": 2250, "fp8": 4500, "tf32": 1100}),
    ("NVIDIA A100-SXM4-80GB", "a100-80", {"bf16": 312, "tf32": 156, "fp32": 19.5}),
    ("NVIDIA A100 80GB PCIe", "a100-80", {"bf16": 312}),
    ("NVIDIA A100-SXM4-40GB", "a100-40", {"bf16": 312}),
    ("NVIDIA A100-PCIE-40GB", "a100-40", {"bf16": 312, "fp8": None}),
    ("NVIDIA L40S", "l40s", {"bf16": 362.05, "fp8": 733}),
    ("NVIDIA L4", "l4", {"bf16": 121}),
    ("NVIDIA RTX A6000", "a6000", {"bf16": 154.8, "fp8": None}),
    ("NVIDIA GeForce RTX 3090", "rtx3090", {"bf16": 71, "fp8": None}),
    ("NVIDIA GeForce RTX 4070", "rtx4070", {"bf16": 58.3, "fp8": 116.6}),
    ("NVIDIA GeForce RTX 4080", "rtx4080", {"bf16": 97.5}),
    ("NVIDIA GeForce RTX 4090", "rtx4090", {"bf16": 165.2, "tf32": 82.6, "fp8": 330.3}),
    ("NVIDIA GeForce RTX 5090", "rtx5090", {"bf16": 209.5}),
    ("AMD Instinct MI300X", "mi300x", {"bf16": 1307.4, "fp8": 2614.9, "tf32": 653.7}),
    ("AMD Instinct MI325X", "mi325x", {"bf16": 1307.4}),
    ("AMD Instinct MI250X/MI250", "mi250x", {"bf16": 191.5, "tf32": None, "fp8": None}),
]


@pytest.mark.parametrize("name, key, peaks", DEVICES, ids=[d[0] for d in DEVICES])
def test_peak_table_by_name_and_precision(name, key, peaks):
    assert hardware.gpu_for_device_name(name).key == key
    for precision, tflops in peaks.items():
        expected = tflops * 1e12 if tflops else None
        assert hardware.peak_flops(name, precision) == (pytest.approx(expected) if expected else None)


@pytest.mark.parametrize(
    "name",
    ["NVIDIA GeForce RTX 4070 Ti", "NVIDIA GeForce RTX 4090 D", "Apple M2 Max", "cpu", "mps", "NVIDIA Tesla T4", ""],
)
def test_unknown_devices_have_no_peak(name):
    assert hardware.peak_flops(name) is None
    assert hardware.peak_flops(name, override=1e14) == 1e14  # peak_flops= in the config


def test_pcie_is_not_taken_for_sxm():
    assert hardware.peak_flops("NVIDIA H100 PCIe") / hardware.peak_flops("NVIDIA H100 80GB HBM3") < 0.8


def fake_device(limit_bytes, bytes_per_sequence, base):
    """A trial whose peak grows by bytes_per_sequence; above limit_bytes it runs out of memory."""
    tried = []

    def trial(batch):
        tried.append(batch)
        peak = base + batch * bytes_per_sequence
        if peak > limit_bytes:
            raise torch.OutOfMemoryError("CUDA out of memory (fake)")
        return peak

    return trial, tried


@pytest.mark.parametrize("start", [1, 7, 40, 1000])
def test_batch_finder_brackets_then_bisects_and_keeps_the_margin(start):
    gib = 2**30
    trial, tried = fake_device(80 * gib, 2 * gib, 10 * gib)  # OOM above 35 sequences
    found, log = measure.find_batch_size(trial, start, capacity=80 * gib, margin=0.0)
    assert found == 35 and len(tried) <= 12
    assert all(peak is None for b, peak in log if b > 35)
    trial, _ = fake_device(80 * gib, 2 * gib, 10 * gib)
    found, _ = measure.find_batch_size(trial, start, capacity=80 * gib, margin=0.10)  # peak <= 72 GiB: 31
    assert found == 31


def test_batch_finder_when_nothing_fits():
    trial, _ = fake_device(2**30, 2**30, 2**30)
    assert measure.find_batch_size(trial, 8, capacity=2**31)[0] == 0


def test_find_batch_size_needs_a_gpu(capsys):
    code, _, stderr = cli(bench.main, [*as_args(tiny_settings()), "--find_batch_size"], capsys)
    assert code == 2 and stderr.startswith("error: --find_batch_size needs a CUDA or ROCm GPU")
    code, _, stderr = cli(bench.main, ["--find-batch-size"], capsys)  # the old spelling is not rewritten
    assert code == 2 and "unknown setting 'find-batch-size'; did you mean find_batch_size?" in stderr


def test_kernel_groups():
    cases = {
        "ampere_bf16_s16816gemm_bf16_128x256": "matmul",
        "aten::addmm": "matmul",
        "flash_fwd_kernel": "attention",
        "aten::_scaled_dot_product_flash_attention_for_cpu": "attention",
        "aten::native_layer_norm_backward": "norm",
        "triton_poi_fused_gelu_0": "activation",
        "aten::_log_softmax_backward_data": "loss",
        "multi_tensor_apply_kernel": "optimizer",
        "aten::_fused_adamw_": "optimizer",
        "aten::copy_": "other",
    }
    assert {name: measure.kernel_group(name) for name in cases} == cases


def test_json_profile_and_compare(capsys, tmp_path):
    args = [
        *as_args(tiny_settings()),
        "--bench_steps=2",
        "--bench_warmup=1",
        "--json",
        "--profile",
        f"--profile_dir={tmp_path / 'prof'}",
    ]
    code, stdout, stderr = cli(bench.main, args, capsys)
    assert code == 0, stderr
    result = json.loads(stdout)  # stdout is only the JSON; the progress lines went to stderr
    assert {
        "device",
        "dtype",
        "params",
        "flops_per_token",
        "batch_size",
        "ms_per_step",
        "tokens_per_s",
        "mfu",
        "peak_rss_gib",
        "profile",
    } <= result.keys()
    assert (
        result["device"] == "cpu"
        and result["mfu"] is None
        and result["params"] == flops.param_count(bench.GPTConfig.from_settings(tiny_settings(), vocab_size=50257))
    )
    assert (
        os.path.getsize(result["profile"]["trace"]) > 1000 and "traceEvents" in open(result["profile"]["trace"]).read()
    )
    assert result["profile"]["groups"]["matmul"] > 0.05 and sum(result["profile"]["groups"].values()) == pytest.approx(
        1
    )
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({**result, "tokens_per_s": result["tokens_per_s"] / 2}))
    code, stdout, _ = cli(bench.main, [*args[:-2], "--bench_steps=1", f"--compare={earlier}"], capsys)
    second = json.loads(stdout)
    assert code == 0 and second["compare"]["tokens_per_s"] == pytest.approx(
        second["tokens_per_s"] * 2 / result["tokens_per_s"]
    )


def test_matmul_ceiling_on_cpu():
    tflops = measure.matmul_tflops("cpu", "fp32", 128, 128, 128, min_time=0.02)
    assert 0 < tflops < 10  # two CPU cores: well under a TFLOP/s
    rows = [{"shape": "a", "bf16": 0.2, "fp32": 0.05}, {"shape": "b", "bf16": 0.3, "fp32": 0.04}]
    assert measure.ceiling(rows, "bf16") == pytest.approx(0.3e12) and measure.ceiling(rows, "tf32") is None
    shapes = measure.model_matmuls(bench.GPTConfig(), 1024)
    assert ("lm_head", 1024, 50304, 768) in shapes and ("mlp up", 1024, 3072, 768) in shapes


def test_bench_reports_speed(char_dataset, capsys):
    args = [f"--{k}={v}" for k, v in TINY.items()]
    code, stdout, stderr = cli(
        bench.main, [*args, f"--data_dir={char_dataset}", "--real_data", "--bench_steps=3"], capsys
    )
    assert code == 0, stderr
    assert "2 micro-steps = 512 tokens per step" in stdout
    assert "tokens/s, MFU n/a (set peak_flops=<the device's FLOP/s>)" in stdout
    code, _, stderr = cli(bench.main, [*args, "--bench_steps=0"], capsys)
    assert code == 2 and stderr == "error: argument '--bench_steps=0': 'bench_steps' must be >= 1, got 0\n"


def test_bench_out_of_memory_off_cuda_is_one_line(monkeypatch):
    def out_of_memory(*args, **kwargs):
        raise torch.OutOfMemoryError("CPU: failed to allocate")

    monkeypatch.setattr(bench.Bench, "accumulate", out_of_memory)
    settings = bench.BenchSettings(**{**TINY, "batch_size": 8, "gradient_accumulation_steps": 2, "vocab_size": 65})
    with pytest.raises(
        RunFailure,
        match=r"out of memory with micro-batch batch_size=8, block_size=32; try "
        r"batch_size=4 with gradient_accumulation_steps=4",
    ):
        bench.run(settings)


@pytest.mark.slow
def test_matmul_mode_prints_both_mfus(capsys):
    code, stdout, _ = cli(
        bench.main,
        [*as_args(tiny_settings()), "--bench_steps=1", "--bench_warmup=0", "--matmul", "--peak_flops=1e12"],
        capsys,
    )
    assert code == 0 and "% of the fp32 datasheet peak" in stdout and "% of the measured ceiling" in stdout


# -----------------------------------------------------------------------------
# bench.py --suite and --calibrate: the harness on CPU (tiny shapes); the GPU's results in
# benchmarks/results are read back by tests/test_memory.py


@pytest.mark.slow
def test_suite_cpu_mode_then_calibration_round_trip_through_plan(capsys, tmp_path):
    out = tmp_path / "suite"
    code, stdout, stderr = cli(bench.main, ["--suite", "--device=cpu", f"--suite_out={out}"], capsys)
    assert code == 0, stderr
    saved = json.loads((out / "suite.json").read_text())
    assert [r["case"] for r in saved["records"]] == [c.name for c in suite.cpu_cases()]
    assert all(r["result"]["tokens_per_s"] > 0 and len(r["result"]["losses"]) == 3 for r in saved["records"])
    assert saved["records"][-1]["result"]["parallelism"] == "ddp"  # torchrun, one process
    table = (out / "suite.md").read_text()
    assert "| tiny-gpt2 b8 eager loss_chunks=4 | tiny-gpt2 b8 eager |" in table and table.strip() in stdout
    assert len(list(out.glob("case*.log"))) == len(saved["records"]) and not list(out.glob("*.json.tmp*"))
    assert not list(out.glob("cpu.json"))  # a CPU suite writes no calibration unless asked

    # --calibrate keeps the cases this suite.json measured (--suite_resume) and writes the file
    args = ["--calibrate", "--device=cpu", f"--suite_out={out}", f"--calibration_dir={tmp_path}", "--suite_resume"]
    code, stdout, stderr = cli(bench.main, args, capsys)
    assert code == 0, stderr
    path = tmp_path / "cpu.json"
    assert f"calibration for cpu written to {path}" in stdout and " ..." not in stdout  # nothing ran again
    measured = calibration.load(str(path))
    assert len(measured.points) == 2 and measured.allocated_factor is None  # a CPU has no allocator peaks
    shape = ["--n_layer=2", "--n_embd=64", "--n_head=2", "--vocab_size=256", "--block_size=64"]  # tiny-gpt2's
    args = ["--vram_gb", "24", "--peak_tflops", "10", *shape, "--json"]
    plain = json.loads(cli(plan.main, args, capsys)[1])
    calibrated = json.loads(cli(plan.main, [*args, "--calibration", str(path)], capsys)[1])
    assert plain["mfu_source"].startswith("assumed") and calibrated["mfu_source"].startswith(f"measured: {path}")
    # the tokens/s bench.py measured for that model, not the assumed MFU's
    (timed,) = [r for r in saved["records"] if r["case"] == "tiny-gpt2 b8 eager"]
    assert calibrated["tokens_per_s"] == pytest.approx(timed["result"]["tokens_per_s"], rel=0.01)
    assert calibrated["tokens_per_s"] != plain["tokens_per_s"]


def test_suite_skips_what_the_budget_cannot_hold(capsys, tmp_path):
    args = ["--suite", "--device=cpu", f"--suite_out={tmp_path}", "--suite_budget=1"]
    code, stdout, _ = cli(bench.main, args, capsys)
    records = json.loads((tmp_path / "suite.json").read_text())["records"]
    assert code == 0 and all(r["skipped"].startswith("budget: ~") for r in records)
    assert "[1/4] tiny-gpt2 b8 eager: skipped (budget: ~5 s, 1 s left)" in stdout


def test_calibration_interpolates_in_log_parameters(tmp_path):
    path = tmp_path / "h.json"
    points = [{"params": 1e8, "achieved_flops": 3e14}, {"params": 1e9, "achieved_flops": 4e14}]
    path.write_text(json.dumps({"device": "NVIDIA H200", "mfu_points": points, "memory": {"reserved_factor": 1.1}}))
    measured = calibration.load(str(path))
    assert measured.achieved_flops(5e7) == 3e14 and measured.achieved_flops(2e9) == 4e14  # the nearest outside
    assert measured.achieved_flops(10**8.5) == pytest.approx(3.5e14)
    device = hardware.device_for("h200", calibration=str(path))
    assert hardware.mfu_for(device, 10**8.5)[0] == pytest.approx(3.5e14 / 989.4e12)
    estimate = memory.training_memory(bench.GPTConfig(), memory.Step(8))
    assert device.peaks(estimate) == (estimate.total, pytest.approx(1.1 * estimate.reserved))
    path.write_text("{}")
    with pytest.raises(ConfigError, match=f"calibration file {path}: not a bench.py --calibrate result"):
        calibration.load(str(path))
    assert suite.file_name("NVIDIA H200") == "h200.json" and suite.file_name("Radeon 7900") == "radeon-7900.json"
