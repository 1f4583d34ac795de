"""
Training speed for a config, without a dataset or a full run: ms per iteration, tokens/s, MFU and
peak memory, from the same model, optimizer and micro-step code as train.py.
    python bench.py config/shakespeare_char.py
    python bench.py config/tinystories_15m.py --batch_size=32 --compile=True
    python bench.py config/shakespeare_char.py --real_data   # batches from the config's dataset
    python bench.py --matmul                   # also the GPU's dense matmul TFLOP/s: the practical ceiling
    python bench.py --find-batch-size          # the largest micro-batch that trains, then its speed
    python bench.py --profile                  # a torch.profiler trace, and the step's time by kernel group
    python bench.py --json [--compare=earlier.json]
    python bench.py --help
Takes every train.py setting too. Random tokens are the default: speed does not depend on the data,
and no dataset has to be prepared. MFU is against the GPU's dense datasheet peak at the training
precision (fitgpt/accounting.py); an unknown device says so instead of guessing.
"""

from fitgpt.errors import exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import dataclasses
import gc
import json
import resource
import sys
import time

import torch

import configurator
from fitgpt import accounting, measure, planner
from fitgpt.architecture import GPTConfig
from fitgpt.checkpoint import Progress
from fitgpt.distributed import compile_options
from fitgpt.errors import ConfigError
from fitgpt.loader import TokenLoader
from fitgpt.metrics import duration
from fitgpt.optim import build_optimizer
from fitgpt.runtime import convert_to_float8, device_name, setup_device, synchronize
from fitgpt.settings import BenchSettings
from fitgpt.shards import data_dir_of, dataset_meta
from fitgpt.tokenization import dataset_vocab_size
from fitgpt.training import NonFiniteGuard, forward_backward, optimizer_step, out_of_memory_hint
from model import GPT


def random_batches(vocab_size: int, batch_size: int, block_size: int, device: str, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)

    def next_batch():
        tokens = torch.randint(0, vocab_size, (batch_size, block_size + 1), generator=generator)
        tokens = tokens.to(device)
        return tokens[:, :-1], tokens[:, 1:]

    return next_batch


def expected_duration(micro_step: float, micro_steps: int, how: str, device: str) -> str:
    """How long the benchmark will take, from its first micro-step; with advice when that is long."""
    total = micro_step * micro_steps
    text = f"a micro-step takes about {micro_step:.2f} s ({how}): the benchmark will take about {duration(total)}"
    if total > 120:
        text += (
            f"; that is long on {device}: try a smaller config (config/shakespeare_char.py), "
            f"--gradient_accumulation_steps=1, --bench_steps=2 or a smaller --batch_size"
        )
    return text


class Bench:
    """The model, optimizer and one train.py iteration of a config, at any micro-batch."""

    def __init__(self, c: BenchSettings, config: GPTConfig, device: str, dtype: str, ctx):
        self.c, self.config, self.device, self.dtype, self.ctx = c, config, device, dtype, ctx
        self.model = GPT(config)
        if c.float8:
            convert_to_float8(self.model, c.float8_recipe, device)
        self.model.to(device)
        self.optimizer = build_optimizer(self.model, c, device)
        self.scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype == "fp16")
        self.compiled = torch.compile(self.model, mode=compile_options(c.compile_mode)) if c.compile else self.model
        self.guard = NonFiniteGuard("stop", 1, "bench", Progress())

    def batches(self, batch_size: int):
        c = self.c
        if c.real_data:
            settings = dataclasses.asdict(c)
            return TokenLoader(
                data_dir_of(settings), "train", batch_size, c.block_size, c.data_order, c.seed, device=self.device
            ).next_batch
        return random_batches(self.config.vocab_size, batch_size, c.block_size, self.device)

    def step(self, next_batch, micro_steps: int) -> None:
        """What one iteration of train.py runs, with its two syncs (loss and gradient norm)."""
        loss = forward_backward(self.compiled, next_batch, micro_steps, self.ctx, self.scaler).item() / micro_steps
        optimizer_step(self.model, self.optimizer, self.scaler, self.c.grad_clip, self.guard, 0, loss)

    def peak_at(self, batch_size: int) -> float:
        """Measured peak bytes of one full step at this micro-batch, after one to warm up (compile).
        Two micro-steps: the second runs with the first's gradients alive, as accumulation does."""
        next_batch = self.batches(batch_size)
        try:
            for measured in (False, True):
                if measured:
                    torch.cuda.reset_peak_memory_stats(self.device)
                self.step(next_batch, 2)
            synchronize(self.device)
            return float(torch.cuda.max_memory_allocated(self.device))
        finally:  # whatever happened, leave the memory as the next trial should find it
            self.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()


def find_batch_size(bench: Bench, c: BenchSettings, say) -> dict:
    """The largest micro-batch that trains, from the memory model's prediction, measured."""
    if not bench.device.startswith("cuda"):
        raise ConfigError(
            "--find-batch-size needs a CUDA or ROCm GPU (a CPU does not report running out of "
            "memory); python plan.py predicts it without one"
        )
    capacity = torch.cuda.get_device_properties(bench.device).total_memory
    device = planner.Device(device_name(bench.device), capacity / accounting.GIB, 0.0)
    predicted = planner.max_micro_batch(
        bench.config, device, bench.dtype, c.compile, c.activation_checkpointing, optimizer=c.optimizer
    )
    say(
        f"finding the largest micro-batch: the memory model predicts {predicted}; keeping {100 * c.batch_margin:.0f}% "
        f"of {capacity / accounting.GIB:.1f} GiB free"
    )
    found, tried = measure.find_batch_size(bench.peak_at, predicted, capacity, c.batch_margin)
    if not found:
        raise ConfigError("not even batch_size=1 trains on this GPU; try activation_checkpointing=1 or a smaller model")
    peak = dict(tried)[found]
    ckpt = c.activation_checkpointing
    predicted_peak = accounting.training_memory(
        bench.config, found, bench.dtype, c.compile, ckpt, optimizer=c.optimizer
    ).total
    tokens_per_step = c.batch_size * c.block_size * c.gradient_accumulation_steps
    accumulation = max(1, tokens_per_step // (found * c.block_size))
    say(
        f"largest micro-batch: {found} ({found * c.block_size:,} tokens); with gradient_accumulation_steps="
        f"{accumulation}: {found * c.block_size * accumulation:,} tokens per step (the config's {tokens_per_step:,}); "
        f"peak {peak / accounting.GIB:.2f} GiB measured, {predicted_peak / accounting.GIB:.2f} GiB predicted"
    )
    return {
        "batch_size": found,
        "gradient_accumulation_steps": accumulation,
        "predicted": predicted,
        "peak_memory_gib": peak / accounting.GIB,
        "predicted_peak_memory_gib": predicted_peak / accounting.GIB,
        "tried": [{"batch_size": b, "peak_memory_gib": p and p / accounting.GIB} for b, p in tried],
    }


def time_steps(bench: Bench, c: BenchSettings, say) -> dict:
    """ms per step, tokens/s and peak memory over bench_steps steps after bench_warmup."""
    micro_steps = c.gradient_accumulation_steps * (c.bench_warmup + c.bench_steps)
    say(f"timing {c.bench_steps} optimizer steps after {c.bench_warmup} warm-up steps ({micro_steps:,} micro-steps)")
    next_batch = bench.batches(c.batch_size)
    # one micro-step first, to say how long the benchmark will take; on a CPU (compute-bound) a
    # single sequence of it says so in seconds (a compiled model would compile that shape too)
    rows = 1 if bench.device == "cpu" and not c.compile else c.batch_size
    x, y = next_batch()
    t0 = time.perf_counter()
    forward_backward(bench.compiled, lambda: (x[:rows], y[:rows]), 1, bench.ctx, bench.scaler)
    bench.optimizer.zero_grad(set_to_none=True)
    synchronize(bench.device)
    first = (time.perf_counter() - t0) * c.batch_size / rows
    how = f"timed on {rows} of its {c.batch_size} sequences" if rows < c.batch_size else "the first one"
    say(expected_duration(first, micro_steps, how + (", compilation included" if c.compile else ""), bench.device))
    for _ in range(c.bench_warmup):
        bench.step(next_batch, c.gradient_accumulation_steps)
    synchronize(bench.device)
    if bench.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(bench.device)
    t0 = time.perf_counter()
    for _ in range(c.bench_steps):
        bench.step(next_batch, c.gradient_accumulation_steps)
    synchronize(bench.device)
    seconds = (time.perf_counter() - t0) / c.bench_steps
    tokens_per_step = c.batch_size * c.block_size * c.gradient_accumulation_steps
    if bench.device.startswith("cuda"):
        memory = {"peak_memory_gib": torch.cuda.max_memory_allocated(bench.device) / accounting.GIB}
    else:
        memory = {"peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    return {"ms_per_step": seconds * 1000, "tokens_per_s": tokens_per_step / seconds, **memory}


def mfu_text(mfu: float | None, against: str) -> str:
    return f"{100 * mfu:.1f}% of the {against}" if mfu is not None else "n/a (set peak_flops=<the device's FLOP/s>)"


def run(c: BenchSettings) -> dict:
    """Benchmark as c says; returns the results (what --json prints)."""
    device, dtype, ctx = setup_device(c.device, c.dtype, seed=c.seed)
    say = (lambda text: print(text, file=sys.stderr, flush=True)) if c.json else (lambda text: print(text, flush=True))
    vocab_size = c.vocab_size or dataset_vocab_size(dataset_meta(dataclasses.asdict(c))[1])  # as train.py
    config = GPTConfig.from_settings(c, vocab_size=vocab_size)
    name, precision = device_name(device), accounting.matmul_precision(dtype, device)
    flops_per_token = accounting.flops_per_token(config)
    results = {
        "device": name,
        "dtype": dtype,
        "compile": c.compile,
        "params": accounting.param_count(config),
        "flops_per_token": flops_per_token,
        "block_size": c.block_size,
    }
    say(
        f"{results['params']:,} parameters, {flops_per_token / 1e6:.1f} MFLOPs/token; {name} ({device}), {dtype}, "
        f"compile={c.compile}, activation_checkpointing={c.activation_checkpointing}"
    )
    bench = Bench(c, config, device, dtype, ctx)
    with out_of_memory_hint(c.batch_size, c.block_size, c.gradient_accumulation_steps, device):
        if c.find_batch_size:
            results["find_batch_size"] = found = find_batch_size(bench, c, say)
            c = dataclasses.replace(
                c, batch_size=found["batch_size"], gradient_accumulation_steps=found["gradient_accumulation_steps"]
            )
        say(
            f"batch_size={c.batch_size} x block_size={c.block_size} x {c.gradient_accumulation_steps} micro-steps = "
            f"{c.batch_size * c.block_size * c.gradient_accumulation_steps:,} tokens per step"
        )
        results.update(
            batch_size=c.batch_size,
            gradient_accumulation_steps=c.gradient_accumulation_steps,
            **time_steps(bench, c, say),
        )
        if c.profile:
            results["profile"] = measure.profile_steps(
                lambda: bench.step(bench.batches(c.batch_size), c.gradient_accumulation_steps),
                c.bench_steps,
                c.profile_dir,
                device,
            )
    peak = accounting.peak_flops(name, precision, c.peak_flops)
    results["mfu"] = accounting.mfu(flops_per_token, results["tokens_per_s"], peak)
    memory = (
        f"peak GPU memory {results['peak_memory_gib']:.2f} GiB"
        if "peak_memory_gib" in results
        else f"peak RSS {results['peak_rss_gib']:.2f} GiB"
    )
    say(
        f"{results['ms_per_step']:.1f} ms per step, {results['tokens_per_s']:,.0f} tokens/s, MFU "
        f"{mfu_text(results['mfu'], f'{precision} datasheet peak')}, {memory}"
    )
    if c.matmul:
        rows = measure.matmul_table(device, config, c.batch_size * c.block_size)
        results["matmul"], best = rows, measure.ceiling(rows, precision)
        results["mfu_measured_ceiling"] = accounting.mfu(flops_per_token, results["tokens_per_s"], best)
        say(matmul_lines(rows))
        say(
            f"measured {precision} ceiling {best / 1e12:.1f} TFLOP/s: MFU "
            f"{mfu_text(results['mfu_measured_ceiling'], 'measured ceiling')}"
        )
    if c.profile:
        say(profile_lines(results["profile"]))
    if c.compare:
        results["compare"] = compare(results, c.compare)
        say("against " + c.compare + ": " + ", ".join(f"{k} x{v:.3f}" for k, v in results["compare"].items()))
    if c.json:
        print(json.dumps(results, indent=1))
    return results


def matmul_lines(rows: list[dict]) -> str:
    precisions = [p for p in measure.PRECISIONS if p in rows[0]]
    lines = [f"{'matmul (m x k @ k x n)':>28} " + " ".join(f"{p:>7}" for p in precisions) + "  TFLOP/s"]
    for row in rows:
        lines.append(
            f"{row['shape'] + ' ' + str((row['m'], row['k'], row['n'])):>28} "
            + " ".join(f"{row[p]:7.3g}" for p in precisions)
        )
    return "\n".join(lines)


def profile_lines(profile: dict) -> str:
    lines = [f"profile ({profile['ms_per_step']:.1f} ms per step of kernel time), trace in {profile['trace']}:"]
    lines += [f"  {group:>10}: {100 * share:5.1f}%" for group, share in profile["groups"].items()]
    lines += [f"  top: {k['share'] * 100:5.1f}% {k['group']:>10}  {k['kernel'][:80]}" for k in profile["top"][:5]]
    return "\n".join(lines)


def compare(results: dict, path: str) -> dict:
    """This run's figures over an earlier --json result's: above 1 is more (tokens/s) or slower (ms)."""
    try:
        with open(path, encoding="utf-8") as f:
            earlier = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"--compare={path}: not a bench.py --json result ({e})") from None
    keys = ("tokens_per_s", "ms_per_step", "mfu", "peak_memory_gib")
    return {k: results[k] / earlier[k] for k in keys if results.get(k) and earlier.get(k)}


def main(argv: list[str]) -> dict:
    argv = [a.replace("--find-batch-size", "--find_batch_size") for a in argv]  # the spelling users type
    return run(configurator.parse(argv, BenchSettings, __doc__.strip())[0])


if __name__ == "__main__":
    exit_on_error(main)
