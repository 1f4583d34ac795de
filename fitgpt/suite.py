"""
The GPU suite behind bench.py --suite and --calibrate: which cases it measures, running each in
its own process (a clean allocator, and one case's crash or out-of-memory is that case's alone)
within a time budget, the report that sets each measurement beside plan.py's prediction, and the
calibration file plan.py and train.py read.

Each case is a bench.py (or torchrun bench.py, or nanoGPT's step, or train.py) command that
prints JSON; suite.json keeps its settings and its output, so the report can be rendered again
against a later memory model (bench.py --suite_report=suite.json).
"""

import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

from fitgpt import memory
from fitgpt.architecture import GPTConfig
from fitgpt.calibration import FOLDER as calibration_folder
from fitgpt.formatting import GIB
from fitgpt.hardware import gpu_for_device_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# the shapes, at GPT-2's vocabulary and block 1024, no biases (train.py's defaults)
LLAMA = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu")
SHAPES = {
    "gpt2-30m": dict(n_layer=6, n_embd=384, n_head=6),
    "gpt2-124m": dict(n_layer=12, n_embd=768, n_head=12),
    "llama-124m": dict(n_layer=12, n_embd=768, n_head=12, **LLAMA),
    "gpt2-350m": dict(n_layer=24, n_embd=1024, n_head=16),
    "gpt2-1.5b": dict(n_layer=48, n_embd=1600, n_head=25),
    "llama-1.4b-gqa": dict(n_layer=24, n_embd=2048, n_head=16, n_kv_heads=4, **LLAMA),
    "gpt2-3.9b": dict(n_layer=48, n_embd=2560, n_head=32),
    # the CPU mode's: the harness itself, in seconds
    "tiny-gpt2": dict(n_layer=2, n_embd=64, n_head=2, block_size=64, vocab_size=256),
    "tiny-gpt2-wide": dict(n_layer=2, n_embd=128, n_head=4, block_size=64, vocab_size=256),
}
GPU_BASE = dict(vocab_size=50257, block_size=1024, bias=False, device="cuda", dtype="bf16", learning_rate=3e-4)
CPU_BASE = dict(device="cpu", dtype="fp32", compile=False)


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    kind: str  # 'bench', 'torchrun' (bench.py under torchrun, one process), 'nanogpt', 'train'
    settings: dict  # bench.py (or train.py) settings
    cost: float  # seconds it is expected to take on an H100/H200, compilation included
    calibrate: bool = False  # one of --calibrate's
    env: dict = dataclasses.field(default_factory=dict)


def bench_case(shape: str, batch: int, *, compiled: bool = True, cost: float = 40, steps: int = 20, **extra) -> Case:
    label = [shape, f"b{batch}", "compiled" if compiled else "eager"]
    label += [f"{k}={v}" for k, v in extra.items() if k not in ("real_data", "data_dir", "kind", "env", "calibrate")]
    kind, env, calibrate = extra.pop("kind", "bench"), extra.pop("env", {}), extra.pop("calibrate", False)
    label += [f"[{v}]" for v in env.values()]
    settings = {
        **GPU_BASE,
        **SHAPES[shape],
        "batch_size": batch,
        "gradient_accumulation_steps": 1,
        "compile": compiled,
        "bench_warmup": 2 if compiled else 1,
        "bench_steps": steps if compiled else 3,
        **extra,
    }
    return Case(" ".join(label), kind, settings, cost, calibrate, env)


def nanogpt_case(shape: str, batch: int, cost: float) -> Case:
    shape_settings = {k: SHAPES[shape][k] for k in ("n_layer", "n_embd", "n_head")}
    return Case(f"nanoGPT {shape} b{batch} compiled", "nanogpt", {**shape_settings, "batch_size": batch}, cost)


def train_case(data_dir: str, cost: float) -> Case:
    """train.py itself, GPT-2 124M on the given dataset: its start-up plan and its plan check."""
    settings = {
        **{k: v for k, v in GPU_BASE.items() if k != "vocab_size"},
        **SHAPES["gpt2-124m"],
        "data_dir": data_dir,
        "batch_size": 16,
        "gradient_accumulation_steps": 4,
        "max_iters": 60,
        "warmup_iters": 10,
        "lr_decay_iters": 60,
        "eval_interval": 60,
        "eval_iters": 5,
        "log_interval": 10,
    }
    return Case("train.py gpt2-124m b16x4 compiled", "train", settings, cost)


def gpu_cases(data_dir: str) -> list[Case]:
    """Every GPU case, most wanted first: what the budget cannot hold falls off the end."""
    real = dict(real_data=True, data_dir=data_dir) if data_dir else {}
    return [
        bench_case("gpt2-124m", 16, cost=50, calibrate=True),
        nanogpt_case("gpt2-124m", 16, cost=45),
        bench_case("gpt2-124m", 16, compiled=False, cost=15),
        bench_case("gpt2-1.5b", 8, cost=110, steps=100, calibrate=True, **real),
        nanogpt_case("gpt2-1.5b", 8, cost=90),
        bench_case("gpt2-1.5b", 8, compiled=False, cost=25),
        bench_case("llama-124m", 16, cost=50),
        bench_case("llama-124m", 16, compiled=False, cost=15),
        bench_case("gpt2-30m", 32, cost=35, calibrate=True),
        bench_case("gpt2-30m", 32, compiled=False, cost=12),
        *([train_case(data_dir, cost=45)] if data_dir else []),
        bench_case("gpt2-124m", 16, cost=40, loss_chunks=8),
        bench_case("gpt2-124m", 16, cost=40, activation_checkpointing=1),
        bench_case("gpt2-350m", 16, cost=60, calibrate=True),
        bench_case("gpt2-350m", 16, compiled=False, cost=15),
        bench_case("llama-1.4b-gqa", 4, compiled=False, cost=20),
        bench_case("gpt2-1.5b", 8, cost=110, steps=100, float8=True, **real),
        bench_case("gpt2-124m", 16, cost=50, kind="torchrun", parallelism="ddp"),
        bench_case("gpt2-124m", 16, cost=60, kind="torchrun", parallelism="fsdp"),
        bench_case("gpt2-124m", 16, cost=40, optimizer="muon", muon_lr=0.02),
        bench_case("gpt2-124m", 16, cost=35, gradient_accumulation_steps=2),
        bench_case("gpt2-124m", 64, cost=40),
        nanogpt_case("gpt2-124m", 64, cost=40),
        bench_case("llama-1.4b-gqa", 8, cost=90, activation_checkpointing=1),
        bench_case("gpt2-3.9b", 4, cost=150, steps=5),
        bench_case("gpt2-124m", 16, cost=35, env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}),
        bench_case("gpt2-1.5b", 8, cost=60, env={"PYTORCH_CUDA_ALLOC_CONF": "expandable_segments:True"}),
        bench_case("gpt2-124m", 16, cost=90, find_batch_size=True, steps=5),
        bench_case("gpt2-1.5b", 8, cost=150, find_batch_size=True, steps=3),
        bench_case("gpt2-3.9b", 2, compiled=False, cost=30),
    ]


def cpu_cases() -> list[Case]:
    """The CPU mode: tiny shapes, eager, so the test suite runs the harness itself in seconds."""
    small = dict(bench_warmup=1, bench_steps=2, gradient_accumulation_steps=1, batch_size=8)
    tiny, wide = {**CPU_BASE, **SHAPES["tiny-gpt2"], **small}, {**CPU_BASE, **SHAPES["tiny-gpt2-wide"], **small}
    return [
        Case("tiny-gpt2 b8 eager", "bench", tiny, 5, calibrate=True),
        Case("tiny-gpt2-wide b8 eager", "bench", wide, 5, calibrate=True),
        Case("tiny-gpt2 b8 eager loss_chunks=4", "bench", {**tiny, "loss_chunks": 4}, 5),
        Case("tiny-gpt2 b8 eager parallelism=ddp", "torchrun", {**tiny, "parallelism": "ddp", "backend": "gloo"}, 8),
    ]


def case_command(case: Case, nanogpt: str, out_dir: str) -> list[str] | None:
    """The command that measures a case (None: it needs a nanoGPT checkout that was not given)."""
    if case.kind == "train":
        args = [f"--{k}={v}" for k, v in case.settings.items()]
        return [sys.executable, os.path.join(ROOT, "train.py"), *args, f"--out_dir={out_dir}"]
    if case.kind == "nanogpt":
        if not nanogpt:
            return None
        args = [f"--{k}={v}" for k, v in case.settings.items()]
        return [sys.executable, os.path.join(ROOT, "benchmarks", "nanogpt_bench.py"), f"--nanogpt={nanogpt}", *args]
    args = [f"--{k}={v}" for k, v in case.settings.items()] + ["--json"]
    script = os.path.join(ROOT, "bench.py")
    if case.kind == "torchrun":
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1", script, *args]
    return [sys.executable, script, *args]


def last_json(text: str) -> dict | None:
    """The JSON object a case printed last on stdout (bench.py --json prints one, indented)."""
    start = text.rfind("\n{")
    for candidate in (text[start + 1 :] if start >= 0 else "", text.strip()):
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    return None


def train_result(out_dir: str) -> dict | None:
    """A train.py case's figures: its plan check and its last logged step's speed."""
    from fitgpt.runfiles import read_records, read_run_config

    config = read_run_config(out_dir)
    steps = [row for row in read_records(os.path.join(out_dir, "metrics.jsonl")) if "tok_per_s" in row]
    if config is None or not steps:
        return None
    last = steps[-1]
    return {
        "params": config["params"],
        "plan_check": config.get("plan_check"),
        "tokens_per_s": last["tok_per_s"],
        "mfu": last["mfu"],
        "loss": last["loss"],
    }


def run_case(case: Case, command: list[str], *, timeout: float, log_path: str, out_dir: str = "") -> dict:
    """Run one case; its record for suite.json (the result, or why there is none)."""
    t0 = time.monotonic()
    env = {**os.environ, **case.env, "PYTHONUNBUFFERED": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
        out, err, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as e:  # what it printed so far (bytes or text, by Python version)
        out, err, code = e.stdout or "", e.stderr or "", None
        out, err = (x.decode(errors="replace") if isinstance(x, bytes) else x for x in (out, err))
    seconds = time.monotonic() - t0
    with open(log_path, "w", encoding="utf-8") as f:
        f.write(f"$ {' '.join(command)}\n--- stdout\n{out}\n--- stderr\n{err}\n")
    record = {"case": case.name, "kind": case.kind, "settings": case.settings, "env": case.env, "seconds": seconds}
    result = None
    if code == 0:
        result = train_result(out_dir) if case.kind == "train" else last_json(out)
    if result is None:
        lines = [line for line in err.strip().splitlines() if line.strip()]
        why = "timed out" if code is None else f"exit {code}: " + (lines[-1] if lines else "no output")
        return {**record, "error": why[:300]}
    return {**record, "result": result}


def environment() -> dict:
    """What the measurements were taken on."""
    import torch

    facts = {
        "date": datetime.date.today().isoformat(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "hip": torch.version.hip,
        "python": platform.python_version(),
        "host_cpus": os.cpu_count(),
    }
    try:
        query = "--query-gpu=name,driver_version,memory.total"
        facts["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", query, "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        facts["commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return facts


def run_suite(c, given: dict) -> dict:
    """bench.py --suite / --calibrate: run the cases that fit the budget, in order, writing
    suite.json after each and suite.md at the end (and, calibrating, the calibration file)."""
    cpu = c.device == "cpu"
    cases = cpu_cases() if cpu else gpu_cases(given.get("data_dir", ""))
    if c.calibrate:
        cases = [case for case in cases if case.calibrate]
    os.makedirs(c.suite_out, exist_ok=True)
    path = os.path.join(c.suite_out, "suite.json")
    suite = {"environment": environment(), "budget_s": c.suite_budget, "records": []}
    done = {}
    if c.suite_resume and os.path.exists(path):  # a second sitting: measured cases are kept, not rerun
        with open(path, encoding="utf-8") as f:
            done = {r["case"]: r for r in json.load(f)["records"] if "skipped" not in r}
    start, spent, expected_spent = time.monotonic(), 0.0, 0.0
    for i, case in enumerate(cases):
        if case.name in done:
            suite["records"].append(done[case.name])
            continue
        left = c.suite_budget - (time.monotonic() - start)
        case_dir = os.path.join(c.suite_out, f"case{i + 1:02d}")
        command = case_command(case, c.nanogpt, case_dir)
        # the costs are guesses for an H100/H200: scale them by how the cases so far compared
        pace = min(4.0, max(0.3, spent / expected_spent)) if expected_spent and not cpu else 1.0
        expected = case.cost * pace
        if command is None or expected > left:
            why = "no --nanogpt checkout given" if command is None else f"budget: ~{expected:.0f} s, {left:.0f} s left"
            suite["records"].append({"case": case.name, "kind": case.kind, "settings": case.settings, "skipped": why})
            print(f"[{i + 1}/{len(cases)}] {case.name}: skipped ({why})", flush=True)
            continue
        print(f"[{i + 1}/{len(cases)}] {case.name} ...", flush=True)
        log = os.path.join(c.suite_out, f"case{i + 1:02d}.log")
        record = run_case(case, command, timeout=min(left, max(3 * expected, 60)), log_path=log, out_dir=case_dir)
        spent, expected_spent = spent + record["seconds"], expected_spent + case.cost
        suite["records"].append(record)
        print(f"    {record['seconds']:.0f} s: {record.get('error') or summary_line(record['result'])}", flush=True)
        write_json(path, suite)
    write_json(os.path.join(c.suite_out, "suite.json"), suite)
    table = report(suite)
    with open(os.path.join(c.suite_out, "suite.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    print(table)
    calibration = calibration_from(suite)
    if calibration["mfu_points"] and (c.calibrate or not cpu):
        folder = (c.calibration_dir or calibration_folder) if c.calibrate else c.suite_out
        path = os.path.join(folder, file_name(calibration["device"]))
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        write_json(path, calibration)
        print(
            f"calibration for {calibration['device']} written to {path}: plan.py --calibration {path} uses it"
            + (", and plan.py --gpu and train.py find it there by the GPU's name" if c.calibrate else "")
        )
        suite["calibration"] = path
    return suite


def file_name(device: str) -> str:
    """calibration/<this>.json: the GPU table's key for a device torch names, else its name made a slug."""
    gpu = gpu_for_device_name(device)
    return f"{gpu.key if gpu else re.sub(r'[^a-z0-9]+', '-', device.lower()).strip('-')}.json"


def write_json(path: str, value: dict) -> None:
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


def summary_line(result: dict) -> str:
    text = f"{result.get('tokens_per_s', 0):,.0f} tokens/s"
    if result.get("mfu"):
        text += f", MFU {100 * result['mfu']:.1f}%"
    if "peak_memory_gib" in result:
        text += f", peak {result['peak_memory_gib']:.2f} GiB allocated"
    if "peak_reserved_gib" in result:
        text += f", {result['peak_reserved_gib']:.2f} GiB reserved"
    return text


# -----------------------------------------------------------------------------
# The report: each measurement beside the current memory model's prediction.


def settings_of(record: dict):
    """The BenchSettings a case ran with."""
    from fitgpt.settings import BenchSettings

    known = {f.name for f in dataclasses.fields(BenchSettings)}
    return BenchSettings(**{k: v for k, v in record["settings"].items() if k in known})


def prediction(record: dict) -> tuple[float, float]:
    """(allocated, reserved) GiB the current memory model predicts for a bench case."""
    s = settings_of(record)
    config = GPTConfig.from_settings(s, vocab_size=s.vocab_size)
    world = record.get("result", {}).get("world_size", 1)
    estimate = memory.run_memory(config, s, record.get("result", {}).get("dtype", "bf16"), world)
    return estimate.total / GIB, estimate.reserved / GIB


def error(measured: float, predicted: float) -> str:
    return f"{100 * (predicted - measured) / measured:+.1f}%"


def report(suite: dict) -> str:
    """The markdown tables of a suite.json: memory and speed, nanoGPT beside fitgpt, the rest."""
    env = suite["environment"]
    records = suite["records"]
    lines = [
        f"Measured {env['date']} on {env.get('nvidia_smi') or 'this machine'}, torch {env['torch']}"
        + (f" (CUDA {env['cuda']})" if env.get("cuda") else "")
        + (f", commit {env['commit']}" if env.get("commit") else "")
        + ".",
        "",
        "| case | params | tokens/s | MFU | allocated GiB | predicted | error | reserved GiB | predicted | error |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in records:
        result = r.get("result")
        if r["kind"] not in ("bench", "torchrun"):
            continue
        if result is None:
            lines.append(f"| {r['case']} | {r.get('skipped') or r.get('error')} | | | | | | | | |")
            continue
        mfu = f"{100 * result['mfu']:.1f}%" if result.get("mfu") else "-"
        row = f"| {r['case']}{envelope(r)} | {result['params'] / 1e6:,.0f}M | {result['tokens_per_s']:,.0f} | {mfu} |"
        if "peak_memory_gib" in result:
            for measured, predicted in zip((result["peak_memory_gib"], result["peak_reserved_gib"]), prediction(r)):
                row += f" {measured:.2f} | {predicted:.2f} | {error(measured, predicted)} |"
        else:
            row += " - | - | - | - | - | - |"
        lines.append(row)
    lines += nanogpt_lines(records) + option_lines(records)
    for r in records:
        check = r.get("result", {}).get("plan_check") if r["kind"] == "train" else None
        if check:
            lines += ["", f"{r['case']}: " + ", ".join(f"{k} {v}" for k, v in check.items())]
    return "\n".join(lines)


def envelope(record: dict) -> str:
    return " (" + ", ".join(f"{k}={v}" for k, v in record["env"].items()) + ")" if record.get("env") else ""


def find(records: list[dict], name: str) -> dict | None:
    return next((r["result"] for r in records if r["case"] == name and "result" in r), None)


def nanogpt_lines(records: list[dict]) -> list[str]:
    lines = []
    for r in records:
        if r["kind"] != "nanogpt" or "result" not in r:
            continue
        theirs = r["result"]
        ours = find(records, r["case"].replace("nanoGPT ", ""))
        if ours is None:
            continue
        if not lines:
            lines = [
                "",
                "| nanoGPT beside fitgpt | fitgpt tokens/s | nanoGPT tokens/s | ratio | peak GiB (fitgpt / nanoGPT) |",
            ]
            lines.append("| --- | --- | --- | --- | --- |")
        lines.append(
            f"| {r['case'].replace('nanoGPT ', '')} | {ours['tokens_per_s']:,.0f} | {theirs['tokens_per_s']:,.0f} | "
            f"**{ours['tokens_per_s'] / theirs['tokens_per_s']:.3f}x** | "
            f"{ours.get('peak_memory_gib', 0):.2f} / {theirs.get('peak_memory_gib', 0):.2f} |"
        )
    return lines


def option_lines(records: list[dict]) -> list[str]:
    """Each option's case against the plain case of its shape: speed, memory, and (float8) loss."""
    lines = []
    for r in records:
        if "result" not in r:
            continue
        base_name = re.sub(
            r" (loss_chunks|activation_checkpointing|gradient_accumulation_steps|optimizer|muon_lr|"
            r"float8|parallelism|find_batch_size|steps)=\S+",
            "",
            r["case"],
        )
        if base_name == r["case"] and not r.get("env"):
            continue
        base = find([x for x in records if not x.get("env")], base_name)
        if base is None or base is r["result"]:
            continue
        if not lines:
            lines = [
                "",
                "| option | against | tokens/s ratio | ms/step | peak allocated GiB | note |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
        ours = r["result"]
        note = ""
        if ours.get("losses") and base.get("losses") and len(ours["losses"]) == len(base["losses"]):
            tail = min(10, len(ours["losses"]))
            gap = sum(ours["losses"][-tail:]) / tail - sum(base["losses"][-tail:]) / tail
            note = f"loss gap over the last {tail} of {len(ours['losses'])} steps: {gap:+.4f}"
        if "find_batch_size" in ours:
            found = ours["find_batch_size"]
            note = (
                f"largest micro-batch {found['batch_size']} (predicted {found['predicted']}), peak "
                f"{found['peak_memory_gib']:.1f} allocated / {found['peak_reserved_gib']:.1f} reserved GiB"
            )
        if "peak_reserved_gib" in ours and r.get("env"):
            note = f"reserved {ours['peak_reserved_gib']:.2f} GiB against {base.get('peak_reserved_gib', 0):.2f}"
        lines.append(
            f"| {r['case']}{envelope(r)} | {base_name} | {ours['tokens_per_s'] / base['tokens_per_s']:.3f} | "
            f"{ours['ms_per_step']:.1f} vs {base['ms_per_step']:.1f} | "
            f"{ours.get('peak_memory_gib', 0):.2f} vs {base.get('peak_memory_gib', 0):.2f} | {note} |"
        )
    return lines


def report_file(path: str) -> dict:
    """bench.py --suite_report=suite.json: the tables again, against the memory model as it is now."""
    from fitgpt.errors import ConfigError

    try:
        with open(path, encoding="utf-8") as f:
            suite = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--suite_report={path}: not a suite.json ({e})") from None
    print(report(suite))
    return suite


# -----------------------------------------------------------------------------
# Calibration: what plan.py and train.py use for a GPU in place of the table's assumptions.


def calibration_from(suite: dict) -> dict:
    """A calibration (fitgpt/calibration.py reads it) from a suite's records: the achieved FLOP/s
    and MFU of the plain GPT-2-block cases by model size (compiled ones, where there are any), and
    the memory model's error on this device, measured over predicted, the largest seen."""
    points, allocated, reserved, device = [], [], [], None
    plain = [
        r
        for r in suite["records"]
        if r["kind"] == "bench" and not r.get("env") and "result" in r and "pos_emb" not in r["settings"]
    ]
    options = ("loss_chunks", "activation_checkpointing", "optimizer", "float8", "find_batch_size")
    speed = [r for r in plain if not any(k in r["settings"] for k in options)]
    compiled = [r for r in speed if r["result"]["compile"]]
    for r in compiled or speed:
        result = r["result"]
        achieved = result["flops_per_token"] * result["tokens_per_s"]
        points.append({"params": result["params"], "achieved_flops": achieved, "mfu": result.get("mfu")})
    for r in plain:
        device = r["result"]["device"]
        if "peak_memory_gib" in r["result"]:
            predicted_allocated, predicted_reserved = prediction(r)
            allocated.append(r["result"]["peak_memory_gib"] / predicted_allocated)
            reserved.append(r["result"]["peak_reserved_gib"] / predicted_reserved)
    return {
        "device": device,
        "environment": suite["environment"],
        "mfu_points": sorted(points, key=lambda p: p["params"]),
        "memory": {
            "allocated_factor": round(max(allocated), 4) if allocated else None,
            "reserved_factor": round(max(reserved), 4) if reserved else None,
            "cases": len(allocated),
        },
    }
