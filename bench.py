"""
Training speed for a config, without a dataset or a full run: ms per iteration, tokens/s, MFU and
peak memory, from the same model, optimizer and micro-step code as train.py.
    python bench.py config/shakespeare_char.py
    python bench.py config/tinystories_15m.py --batch_size=32 --compile=True
    python bench.py config/shakespeare_char.py --real_data   # batches from the config's dataset
    python bench.py --matmul                   # also the GPU's dense matmul TFLOP/s: the practical ceiling
    python bench.py --find_batch_size          # the largest micro-batch that trains, then its speed
    python bench.py --profile                  # a torch.profiler trace, and the step's time by kernel group
    python bench.py --json [--compare=earlier.json]
    torchrun --standalone --nproc_per_node=1 bench.py --parallelism=fsdp   # the step under DDP or FSDP2
    python bench.py --suite [--nanogpt=../nanoGPT]   # the GPU suite: memory and speed against plan.py, ~8 min
    python bench.py --calibrate                # 2-3 min: this GPU's MFU by size and memory, for plan.py and train.py
    python bench.py --help
Takes every train.py setting too. Random tokens are the default: speed does not depend on the data,
and no dataset has to be prepared. MFU is against the GPU's dense datasheet peak at the training
precision (fitgpt/hardware.py); an unknown device says so instead of guessing.
"""

from fitgpt.errors import exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import dataclasses
import gc
import json
import math
import resource
import sys
import time

import torch

import configurator
from fitgpt import distributed, flops, hardware, measure, memory, suite
from fitgpt.errors import ConfigError
from fitgpt.formatting import GIB, MIB, duration
from fitgpt.loader import TokenLoader
from fitgpt.optim import build_optimizer
from fitgpt.runtime import convert_to_float8, device_name, setup_device, synchronize
from fitgpt.settings import BenchSettings
from fitgpt.shards import data_dir_of, dataset_meta
from fitgpt.tokenization import dataset_vocab_size
from fitgpt.training import out_of_memory_hint, skip_nonfinite
from model import GPT, GPTConfig


def random_batches(vocab_size: int, batch_size: int, block_size: int, *, device: str, seed: int = 0):
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

    def __init__(
        self, c: BenchSettings, config: GPTConfig, *, device: str, dtype: str, ctx, dist: distributed.Distributed
    ):
        self.c, self.config, self.device, self.dtype, self.dist = c, config, device, dtype, dist
        self.model = GPT(config, activation_checkpointing=c.activation_checkpointing, loss_chunks=c.loss_chunks)
        if c.float8:
            convert_to_float8(self.model, c.float8_recipe, device)
        self.model.to(device)
        # as train.py: compiled, and under torchrun DDP-wrapped or FSDP2-sharded
        self.compiled, self.ctx = distributed.wrap(
            self.model, dist, device, compile=c.compile, dtype=dtype, autocast=ctx, compile_mode=c.compile_mode
        )
        self.optimizer = build_optimizer(self.model, c, device)
        self.scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype == "fp16")
        self.micro_steps = distributed.micro_steps_per_rank(c.gradient_accumulation_steps, dist.world_size)
        self.allocated_at: dict[int, float] = {}  # peak_at's allocated peaks, by micro-batch

    def batches(self, batch_size: int):
        c = self.c
        if c.real_data:
            settings = dataclasses.asdict(c)
            return TokenLoader(
                data_dir_of(settings), "train", batch_size, c.block_size, c.data_order, seed=c.seed, device=self.device
            ).next_batch
        return random_batches(self.config.vocab_size, batch_size, c.block_size, device=self.device)

    def step(self, next_batch, micro_steps: int) -> float:
        """What one iteration of train.py's loop runs, with its two syncs (loss and gradient norm):
        the micro-steps' forward and backward, then the update; its loss."""
        loss = self.accumulate(next_batch, micro_steps).item() / micro_steps
        self.update(loss)
        return loss

    def accumulate(self, next_batch, micro_steps: int) -> torch.Tensor:
        """train.py's micro-step loop: forward under autocast, backward of the scaled loss, the
        gradients reduced over the ranks on the last one; the summed loss."""
        loss_sum = 0.0
        for micro_step in range(micro_steps):
            x, y = next_batch()
            distributed.sync_gradients(self.compiled, self.dist, micro_step == micro_steps - 1)
            with self.ctx:
                loss = self.compiled(x, y)[1]
            loss_sum += loss.detach()
            self.scaler.scale(loss / micro_steps).backward()
        return loss_sum

    def update(self, loss: float) -> None:
        """train.py's update: unscale, clip, step unless the loss or gradient is non-finite, clear."""
        self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.c.grad_clip or math.inf)
        grad_norm = distributed.local_norm(norm).item()
        if not skip_nonfinite(self.c, 0, loss, grad_norm, scaled=self.scaler.is_enabled(), in_a_row=0):
            self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)

    def memory_phases(self, next_batch) -> dict:
        """Allocated GiB with the weights and optimizer state alone (no gradients), and what one
        micro-step's forward adds (what it keeps for backward, the loss), measured in one more step."""
        self.optimizer.zero_grad(set_to_none=True)
        synchronize(self.device)
        state = torch.cuda.memory_allocated(self.device)
        x, y = next_batch()
        with self.ctx:
            loss = self.compiled(x, y)[1]
        synchronize(self.device)
        forward = torch.cuda.memory_allocated(self.device) - state
        self.scaler.scale(loss).backward()
        del loss
        self.update(0.0)
        return {"state_gib": state / GIB, "forward_gib": forward / GIB}

    def peak_at(self, batch_size: int) -> float:
        """Measured peak reserved bytes of one full step at this micro-batch (what runs out is
        reserved memory), after one to warm up (compile); the allocated peak is kept in
        self.allocated_at. Two micro-steps: the second runs with the first's gradients alive, as
        accumulation does."""
        next_batch = self.batches(batch_size)
        try:
            for measured in (False, True):
                if measured:
                    torch.cuda.reset_peak_memory_stats(self.device)
                self.step(next_batch, 2)
            synchronize(self.device)
            self.allocated_at[batch_size] = float(torch.cuda.max_memory_allocated(self.device))
            return float(torch.cuda.max_memory_reserved(self.device))
        finally:  # whatever happened, leave the memory as the next trial should find it
            self.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()


def predicted_memory(c: BenchSettings, config: GPTConfig, dtype: str, world_size: int) -> dict:
    """plan.py's prediction for this step: the function train.py's start-up plan calls too."""
    estimate = memory.run_memory(config, c, dtype, world_size)
    return {"predicted_peak_memory_gib": estimate.total / GIB, "predicted_peak_reserved_gib": estimate.reserved / GIB}


def find_batch_size(bench: Bench, c: BenchSettings, say) -> dict:
    """The largest micro-batch that trains, from the memory model's prediction, measured."""
    if not bench.device.startswith("cuda"):
        raise ConfigError(
            "--find_batch_size needs a CUDA or ROCm GPU (a CPU does not report running out of "
            "memory); python plan.py predicts it without one"
        )
    capacity = torch.cuda.get_device_properties(bench.device).total_memory
    device = hardware.Device(device_name(bench.device), capacity / GIB, 0.0)
    step = dataclasses.replace(memory.Step.of(c, bench.dtype), micro_steps=1)
    predicted = memory.max_micro_batch(bench.config, device, step)
    say(
        f"finding the largest micro-batch: the memory model predicts {predicted}; keeping {100 * c.batch_margin:.0f}% "
        f"of {capacity / GIB:.1f} GiB free"
    )
    found, tried = measure.find_batch_size(bench.peak_at, predicted, capacity, margin=c.batch_margin)
    if not found:
        raise ConfigError("not even batch_size=1 trains on this GPU; try activation_checkpointing=1 or a smaller model")
    reserved, allocated = dict(tried)[found], bench.allocated_at[found]
    predicted_peak = predicted_memory(
        dataclasses.replace(c, batch_size=found, gradient_accumulation_steps=2), bench.config, bench.dtype, 1
    )
    tokens_per_step = c.batch_size * c.block_size * c.gradient_accumulation_steps
    _, accumulation = memory.rebatch(c.batch_size, c.gradient_accumulation_steps, found)
    say(
        f"largest micro-batch: {found} ({found * c.block_size:,} tokens); with gradient_accumulation_steps="
        f"{accumulation}: {found * c.block_size * accumulation:,} tokens per step (the config's {tokens_per_step:,}); "
        f"peak {allocated / GIB:.2f} GiB allocated, {reserved / GIB:.2f} GiB reserved measured; "
        f"{predicted_peak['predicted_peak_memory_gib']:.2f} and {predicted_peak['predicted_peak_reserved_gib']:.2f} "
        "GiB predicted"
    )
    return {
        "batch_size": found,
        "gradient_accumulation_steps": accumulation,
        "predicted": predicted,
        "peak_memory_gib": allocated / GIB,
        "peak_reserved_gib": reserved / GIB,
        **predicted_peak,
        "tried": [
            {"batch_size": b, "peak_reserved_gib": p and p / GIB, "peak_memory_gib": p and bench.allocated_at[b] / GIB}
            for b, p in tried
        ],
    }


def time_steps(bench: Bench, c: BenchSettings, say) -> dict:
    """ms per step, tokens/s, each step's loss and peak memory over bench_steps steps after bench_warmup."""
    micro_steps = bench.micro_steps * (c.bench_warmup + c.bench_steps)
    say(f"timing {c.bench_steps} optimizer steps after {c.bench_warmup} warm-up steps ({micro_steps:,} micro-steps)")
    next_batch = bench.batches(c.batch_size)
    # one micro-step first, to say how long the benchmark will take; on a CPU (compute-bound) a
    # single sequence of it says so in seconds (a compiled model would compile that shape too)
    rows = 1 if bench.device == "cpu" and not c.compile else c.batch_size
    x, y = next_batch()
    t0 = time.perf_counter()
    bench.accumulate(lambda: (x[:rows], y[:rows]), 1)
    bench.optimizer.zero_grad(set_to_none=True)
    synchronize(bench.device)
    first = (time.perf_counter() - t0) * c.batch_size / rows
    how = f"timed on {rows} of its {c.batch_size} sequences" if rows < c.batch_size else "the first one"
    say(expected_duration(first, micro_steps, how + (", compilation included" if c.compile else ""), bench.device))
    losses = [bench.step(next_batch, bench.micro_steps) for _ in range(c.bench_warmup)]
    synchronize(bench.device)
    cuda = bench.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats(bench.device)
    t0 = time.perf_counter()
    losses += [bench.step(next_batch, bench.micro_steps) for _ in range(c.bench_steps)]
    synchronize(bench.device)
    seconds = (time.perf_counter() - t0) / c.bench_steps
    tokens_per_step = c.batch_size * c.block_size * c.gradient_accumulation_steps
    result = {"ms_per_step": seconds * 1000, "tokens_per_s": tokens_per_step / seconds, "losses": losses}
    if not cuda:
        return {**result, "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / MIB}
    stats = torch.cuda.memory_stats(bench.device)
    result.update(
        peak_memory_gib=torch.cuda.max_memory_allocated(bench.device) / GIB,
        peak_reserved_gib=torch.cuda.max_memory_reserved(bench.device) / GIB,
        alloc_retries=stats.get("num_alloc_retries", 0),
    )
    if not bench.dist.enabled:
        result.update(bench.memory_phases(next_batch))
    return result


def mfu_text(mfu: float | None, against: str) -> str:
    return f"{100 * mfu:.1f}% of the {against}" if mfu is not None else "n/a (set peak_flops=<the device's FLOP/s>)"


def run(c: BenchSettings) -> dict:
    """Benchmark as c says; returns the results (what --json prints). Under torchrun only rank 0
    prints; each rank measures its own GPU."""
    dist = distributed.from_environment(c.parallelism)
    device = distributed.join(dist, c.device, c.backend, c.dist_timeout)
    device, dtype, ctx = setup_device(device, c.dtype, seed=c.seed)
    quiet = not dist.master
    say = (
        (lambda text: None)
        if quiet
        else (lambda text: print(text, file=sys.stderr, flush=True))
        if c.json
        else (lambda text: print(text, flush=True))
    )
    vocab_size = c.vocab_size or dataset_vocab_size(dataset_meta(dataclasses.asdict(c))[1])  # as train.py
    config = GPTConfig.from_settings(c, vocab_size=vocab_size)
    name, precision = device_name(device), hardware.matmul_precision(dtype, device)
    flops_per_token = flops.flops_per_token(config)
    results = {
        "device": name,
        "dtype": dtype,
        "compile": c.compile,
        "params": flops.param_count(config),
        "flops_per_token": flops_per_token,
        "block_size": c.block_size,
        "parallelism": c.parallelism if dist.enabled else "none",
        "world_size": dist.world_size,
    }
    say(
        f"{results['params']:,} parameters, {flops_per_token / 1e6:.1f} MFLOPs/token; {name} ({device}), {dtype}, "
        f"compile={c.compile}, activation_checkpointing={c.activation_checkpointing}"
        + (f"; {c.parallelism} over {dist.world_size} process(es)" if dist.enabled else "")
    )
    bench = Bench(c, config, device=device, dtype=dtype, ctx=ctx, dist=dist)
    with out_of_memory_hint(c, device):
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
            **predicted_memory(c, config, dtype, dist.world_size),
        )
        if c.profile:
            results["profile"] = measure.profile_steps(
                lambda: bench.step(bench.batches(c.batch_size), bench.micro_steps), c.bench_steps, c.profile_dir, device
            )
    peak = hardware.peak_flops(name, precision, c.peak_flops)
    results["mfu"] = flops.mfu(flops_per_token, results["tokens_per_s"] / dist.world_size, peak)
    if "peak_memory_gib" in results:
        memory = (
            f"peak GPU memory {results['peak_memory_gib']:.2f} GiB allocated (predicted "
            f"{results['predicted_peak_memory_gib']:.2f}), {results['peak_reserved_gib']:.2f} GiB reserved "
            f"(predicted {results['predicted_peak_reserved_gib']:.2f})"
        )
    else:
        memory = f"peak RSS {results['peak_rss_gib']:.2f} GiB"
    say(
        f"{results['ms_per_step']:.1f} ms per step, {results['tokens_per_s']:,.0f} tokens/s, MFU "
        f"{mfu_text(results['mfu'], f'{precision} datasheet peak')}, {memory}"
    )
    if c.matmul:
        rows = measure.matmul_table(device, config, c.batch_size * c.block_size)
        results["matmul"], best = rows, measure.ceiling(rows, precision)
        results["mfu_measured_ceiling"] = flops.mfu(flops_per_token, results["tokens_per_s"], best)
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
    bench = None  # release DDP's communication objects while the process group still exists
    distributed.teardown(dist)
    if c.json and dist.master:
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
    c, given = configurator.parse(argv, BenchSettings, __doc__.strip())
    if c.suite or c.calibrate:
        return suite.run_suite(c, given)
    if c.suite_report:
        return suite.report_file(c.suite_report)
    return run(c)


if __name__ == "__main__":
    exit_on_error(main)
