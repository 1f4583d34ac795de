"""
Training speed for a config, without a dataset or a full run: ms per iteration, tokens/s, MFU and
peak memory, from the same model, optimizer and micro-step code as train.py.
    python bench.py config/shakespeare_char.py
    python bench.py config/tinystories_15m.py --batch_size=32 --compile=True
    python bench.py config/shakespeare_char.py --real_data=True   # batches from the config's dataset
    python bench.py --help
Takes every train.py setting, plus bench_steps, bench_warmup and real_data. Random tokens are the
default: speed does not depend on the data, and no dataset has to be prepared.
"""

from fitgpt.errors import exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import dataclasses
import resource
import time

import torch

import configurator
from fitgpt import accounting
from fitgpt.architecture import GPTConfig
from fitgpt.checkpoint import Progress
from fitgpt.loader import TokenLoader
from fitgpt.metrics import duration
from fitgpt.runtime import device_name, peak_memory_gib, setup_device, synchronize
from fitgpt.settings import BenchSettings
from fitgpt.shards import data_dir_of, dataset_meta
from fitgpt.tokenization import dataset_vocab_size
from fitgpt.training import NonFiniteGuard, forward_backward, make_optimizer, optimizer_step, out_of_memory_hint
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


def run(c: BenchSettings) -> dict:
    """Time c.bench_steps optimizer steps after c.bench_warmup; returns the figures."""
    device, dtype, ctx = setup_device(c.device, c.dtype, seed=c.seed)
    device_type = device.split(":")[0]
    settings = dataclasses.asdict(c)
    vocab_size = c.vocab_size or dataset_vocab_size(dataset_meta(settings)[1])  # as train.py
    config = GPTConfig.from_settings(c, vocab_size=vocab_size)
    model = GPT(config).to(device)
    optimizer = make_optimizer(model, c.weight_decay, c.learning_rate, (c.beta1, c.beta2), device)
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "fp16"))
    flops_per_token = accounting.flops_per_token(config)
    compiled = torch.compile(model) if c.compile else model
    if c.real_data:
        next_batch = TokenLoader(
            data_dir_of(settings), "train", c.batch_size, c.block_size, c.data_order, c.seed, device=device
        ).next_batch
    else:
        next_batch = random_batches(vocab_size, c.batch_size, c.block_size, device)
    tokens_per_step = c.batch_size * c.block_size * c.gradient_accumulation_steps
    print(
        f"{accounting.param_count(config):,} parameters, {flops_per_token / 1e6:.1f} MFLOPs/token; device {device}, "
        f"{dtype}, compile={c.compile}; batch_size={c.batch_size} x block_size={c.block_size} x "
        f"{c.gradient_accumulation_steps} micro-steps = {tokens_per_step:,} tokens per step"
    )

    guard = NonFiniteGuard("stop", 1, "bench", Progress())

    def step():  # what one iteration of train.py runs, with its two syncs (loss and gradient norm)
        loss_sum = forward_backward(compiled, next_batch, c.gradient_accumulation_steps, ctx, scaler)
        loss = loss_sum.item() / c.gradient_accumulation_steps
        optimizer_step(model, optimizer, scaler, c.grad_clip, guard, 0, loss)

    micro_steps = c.gradient_accumulation_steps * (c.bench_warmup + c.bench_steps)
    print(f"timing {c.bench_steps} optimizer steps after {c.bench_warmup} warm-up steps ({micro_steps:,} micro-steps)")
    with out_of_memory_hint(c.batch_size, c.block_size, c.gradient_accumulation_steps, device):
        # one micro-step first, to say how long the benchmark will take; on a CPU (compute-bound) a
        # single sequence of it says so in seconds (a compiled model would compile that shape too)
        rows = 1 if device_type == "cpu" and not c.compile else c.batch_size
        x, y = next_batch()
        t0 = time.perf_counter()
        forward_backward(compiled, lambda: (x[:rows], y[:rows]), 1, ctx, scaler)
        optimizer.zero_grad(set_to_none=True)
        synchronize(device)
        first = (time.perf_counter() - t0) * c.batch_size / rows
        how = f"timed on {rows} of its {c.batch_size} sequences" if rows < c.batch_size else "the first one"
        how += ", compilation included" if c.compile else ""
        print(expected_duration(first, micro_steps, how, device), flush=True)
        for _ in range(c.bench_warmup):
            step()
        synchronize(device)
        if device_type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        t0 = time.perf_counter()
        for _ in range(c.bench_steps):
            step()
        synchronize(device)
    seconds = (time.perf_counter() - t0) / c.bench_steps
    tok_per_s = tokens_per_step / seconds
    peak = accounting.peak_flops(device_name(device), accounting.PRECISION[dtype], c.peak_flops)
    mfu = accounting.mfu(flops_per_token, tok_per_s, peak)
    mfu_text = f"{100 * mfu:.1f}%" if mfu is not None else "n/a (set peak_flops)"
    peak_gib = peak_memory_gib(device)
    if peak_gib is not None:
        memory = f"peak GPU memory {peak_gib:.2f} GiB"
    else:
        memory = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    print(f"{seconds * 1000:.1f} ms per step, {tok_per_s:,.0f} tokens/s, MFU {mfu_text}, {memory}")
    return {"ms_per_step": seconds * 1000, "tokens_per_s": tok_per_s, "mfu": mfu, "peak_memory_gib": peak_gib}


def main(argv: list[str]) -> dict:
    return run(configurator.parse(argv, BenchSettings, __doc__.strip())[0])


if __name__ == "__main__":
    exit_on_error(main)
