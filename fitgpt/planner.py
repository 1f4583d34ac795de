"""
Sizing a run, in arithmetic only (no torch: plan.py answers in milliseconds): what a config costs
on a GPU (memory, tokens, FLOPs, hours) and which model to train for a GPU, a number of tokens and
a time budget, written out as a config. The figures come from accounting.py; the losses from a
published scaling law, so they are approximate.
"""

import math
from dataclasses import asdict, dataclass, field, replace

from fitgpt import accounting
from fitgpt.accounting import GIB
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError

DEFAULT_MFU = 0.40  # what fitgpt ran at on one H100, GPT-2 124M to 1.5B, compiled: 39-43 % (docs/benchmarks.md)
TOKENS_PER_PARAM = 20  # compute-optimal training tokens per parameter (Hoffmann et al. 2022)
# L(N, D) = E + A / N^alpha + B / D^beta: Hoffmann et al. 2022 ("Chinchilla"), approach 3, fitted
# on their MassiveText data and tokenizer: on other data it is a rough guide, not a forecast
CHINCHILLA = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
REPEAT_DECAY = 15.4  # R*_D of Muennighoff et al. 2023: the value of repeated tokens decays over ~15 epochs
WARMUP_TOKENS = 375e6  # GPT-3's warmup, which nanoGPT's 715 iterations x 0.5M tokens also is
# GPT-3's learning rates by size (Brown et al. 2020, table 2.1), interpolated in log-log
GPT3_LR = ((125e6, 6e-4), (350e6, 3e-4), (760e6, 2.5e-4), (1.3e9, 2e-4), (2.7e9, 1.6e-4), (6.7e9, 1.2e-4), (13e9, 1e-4))
# the shapes the search tries: (n_layer, n_embd, n_head), ~16M to ~13B parameters at GPT-2's vocabulary
# fmt: off
SHAPES = (
    (4, 256, 4), (6, 384, 6), (8, 512, 8), (12, 768, 12), (16, 1024, 16),
    (24, 1024, 16), (24, 1280, 20), (36, 1280, 20), (48, 1600, 25),
    (32, 2560, 32), (48, 2560, 32), (32, 4096, 32), (40, 5120, 40),
)
# fmt: on
ARCHS = {"gpt2": dict(bias=False), "llama": dict(bias=False, pos_emb="rope", norm="rmsnorm", mlp="swiglu")}


@dataclass(frozen=True)
class Device:
    name: str
    memory_gib: float
    peak_flops: float  # dense bf16, FLOP/s


def device_for(gpu: str | None, vram_gb: float | None = None, peak_tflops: float | None = None) -> Device:
    """A GPU of the table (plan.py --gpu), or one described by --vram-gb and --peak-tflops."""
    if gpu:
        entry = accounting.gpu_by_key(gpu)
        if entry is None:
            names = ", ".join(g.key for g in accounting.GPUS)
            raise ConfigError(f"unknown --gpu {gpu!r}; use one of {names}, or --vram-gb and --peak-tflops")
        return Device(entry.name, vram_gb or entry.memory_gib, (peak_tflops or entry.tflops["bf16"]) * 1e12)
    if not (vram_gb and peak_tflops):
        raise ConfigError("name a GPU with --gpu (e.g. h100, mi300x, rtx4090) or give --vram-gb and --peak-tflops")
    return Device(f"a {vram_gb:g} GB GPU at {peak_tflops:g} TFLOP/s", vram_gb, peak_tflops * 1e12)


def effective_tokens(tokens: float, unique: float | None) -> float:
    """Tokens worth of fresh data that `tokens` of training on `unique` tokens is: each repeat is
    worth less (Muennighoff et al. 2023: D' = U + U R* (1 - exp(-R / R*)), R the epochs beyond
    the first); about 4 epochs are nearly as good as new data, 40 hardly better than 16."""
    if not unique or tokens <= unique:
        return tokens
    repeats = tokens / unique - 1
    return unique + unique * REPEAT_DECAY * (1 - math.exp(-repeats / REPEAT_DECAY))


def predicted_loss(params: float, tokens: float, unique: float | None = None, law: dict = CHINCHILLA) -> float:
    """Loss (nats per token) a scaling law predicts: the Chinchilla fit (approximate, and on its own
    data) or one fitted to your runs (plan.py --fit)."""
    c = law
    return c["E"] + c["A"] / params ** c["alpha"] + c["B"] / effective_tokens(tokens, unique) ** c["beta"]


def recompute_factor(config: GPTConfig, activation_checkpointing: int) -> float:
    """Training time relative to no checkpointing: a checkpointed block runs its forward (a third
    of its training FLOPs) twice."""
    return 1 + accounting.checkpointed_layers(config.n_layer, activation_checkpointing) / config.n_layer / 3


def tokens_per_second(config: GPTConfig, device: Device, mfu: float, activation_checkpointing: int = 0) -> float:
    """One GPU's training throughput at this MFU (model FLOPs, recomputation not counted as useful)."""
    return (
        mfu
        * device.peak_flops
        / accounting.flops_per_token(config)
        / recompute_factor(config, activation_checkpointing)
    )


def max_micro_batch(
    config: GPTConfig,
    device: Device,
    dtype: str = "bf16",
    compile: bool = True,
    activation_checkpointing: int = 0,
    gradient_accumulation_steps: int = 1,
    shards: int = 1,
    limit: int = 4096,
    optimizer: str = "adamw",
) -> int:
    """The largest micro-batch whose predicted peak fits the device (0: not even one sequence)."""
    usable = accounting.usable_memory(device.memory_gib)

    def fits(b):
        return (
            accounting.training_memory(
                config, b, dtype, compile, activation_checkpointing, gradient_accumulation_steps, shards, optimizer
            ).total
            <= usable
        )

    if not fits(1):
        return 0
    low, high = 1, limit
    while low < high:  # the peak grows with the micro-batch: bisect for the last one that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


@dataclass
class RunPlan:
    """A run's figures on a device; the keys of plan.py --json."""

    params: int
    n_layer: int
    n_embd: int
    n_head: int
    batch_size: int
    gradient_accumulation_steps: int
    activation_checkpointing: int
    peak_memory_gib: float
    usable_memory_gib: float
    fits: bool
    max_micro_batch: int
    tokens_per_step: int
    total_tokens: int
    unique_tokens: int | None
    epochs: float | None
    tokens_per_param: float
    train_flops: float
    mfu: float
    tokens_per_s: float
    hours: float
    predicted_loss: float
    memory: dict = field(default_factory=dict)
    parallelism: str = "ddp"

    def to_dict(self) -> dict:
        return asdict(self)


def plan_run(
    config: GPTConfig,
    device: Device,
    batch_size: int,
    gradient_accumulation_steps: int,
    max_iters: int,
    dtype: str = "bf16",
    compile: bool = True,
    gpus: int = 1,
    mfu: float = DEFAULT_MFU,
    unique_tokens: int | None = None,
    parallelism: str = "ddp",
    law: dict = CHINCHILLA,
    optimizer: str = "adamw",
) -> RunPlan:
    """The figures of a run with these settings (config.activation_checkpointing included) on
    `gpus` GPUs with DDP, or with FSDP (per-GPU memory: the model state divided over the GPUs)."""
    ckpt = config.activation_checkpointing
    micro_steps = max(1, gradient_accumulation_steps // gpus)
    shards = gpus if parallelism == "fsdp" else 1
    memory = accounting.training_memory(config, batch_size, dtype, compile, ckpt, micro_steps, shards, optimizer)
    tokens_per_step = batch_size * config.block_size * gradient_accumulation_steps
    total = tokens_per_step * max_iters
    params = accounting.param_count(config)
    rate = tokens_per_second(config, device, mfu, ckpt) * gpus
    return RunPlan(
        params=params,
        n_layer=config.n_layer,
        n_embd=config.n_embd,
        n_head=config.n_head,
        batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        activation_checkpointing=ckpt,
        peak_memory_gib=round(memory.total / GIB, 2),
        usable_memory_gib=round(accounting.usable_memory(device.memory_gib) / GIB, 2),
        fits=memory.total <= accounting.usable_memory(device.memory_gib),
        max_micro_batch=max_micro_batch(config, device, dtype, compile, ckpt, micro_steps, shards, optimizer=optimizer),
        parallelism=parallelism,
        tokens_per_step=tokens_per_step,
        total_tokens=total,
        unique_tokens=unique_tokens,
        epochs=round(total / unique_tokens, 3) if unique_tokens else None,
        tokens_per_param=round(total / params, 2),
        train_flops=float(accounting.flops_per_token(config) * total),
        mfu=mfu,
        tokens_per_s=round(rate, 1),
        hours=round(total / rate / 3600, 2) if rate else math.inf,
        predicted_loss=round(predicted_loss(params, total, unique_tokens, law), 3),
        memory=memory.breakdown_gib(),
    )


def tokens_per_step_for(params: float) -> int:
    """About GPT-3's batch size for a model of this size: 0.5M tokens below 1B, 1M below 5B, else 2M."""
    return 2**19 if params < 1e9 else 2**20 if params < 5e9 else 2**21


def learning_rate_for(params: float) -> float:
    """GPT-3's learning rate for this size, interpolated in log-log (1e-3 at most for tiny models)."""
    points = [(math.log(n), math.log(lr)) for n, lr in GPT3_LR]
    x = math.log(params)
    (x0, y0), (x1, y1) = (points[0], points[1]) if x < points[0][0] else (points[-2], points[-1])
    for a, b in zip(points, points[1:]):
        if a[0] <= x <= b[0]:
            (x0, y0), (x1, y1) = a, b
    return min(1e-3, math.exp(y0 + (y1 - y0) * (x - x0) / (x1 - x0)))


def shape_config(shape: tuple[int, int, int], arch: str, vocab_size: int, block_size: int = 1024) -> GPTConfig:
    n_layer, n_embd, n_head = shape
    return GPTConfig(
        n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=vocab_size, block_size=block_size, **ARCHS[arch]
    )


def batch_layout(params: float, micro_batch: int, block_size: int, gpus: int) -> tuple[int, int]:
    """(batch_size, gradient_accumulation_steps) for about tokens_per_step_for(params) tokens per
    step: the micro-batch a power of two at most the largest that fits, the accumulation a
    multiple of the number of GPUs."""
    batch = 2 ** int(math.log2(micro_batch))
    target = tokens_per_step_for(params)
    accumulation = gpus * max(1, round(target / (batch * block_size * gpus)))
    return batch, accumulation


def candidate(
    shape: tuple[int, int, int],
    arch: str,
    vocab_size: int,
    device: Device,
    unique_tokens: int | None,
    hours: float | None,
    gpus: int,
    mfu: float,
    block_size: int = 1024,
    law: dict = CHINCHILLA,
) -> RunPlan | None:
    """The run plan of one shape: the largest power-of-two micro-batch that fits (checkpointing
    every block only when none does; on several GPUs, sharding with FSDP only when even that does
    not fit), the tokens Chinchilla would give it (or, with a time budget, as many as the time
    allows), None when it does not fit at all."""
    config = shape_config(shape, arch, vocab_size, block_size)
    ways = [("ddp", 1, 0), ("ddp", 1, 1)] + ([("fsdp", gpus, 0), ("fsdp", gpus, 1)] if gpus > 1 else [])
    for way in ways:
        parallelism, shards, ckpt = way
        config = replace(config, activation_checkpointing=ckpt)
        micro = max_micro_batch(
            config, device, activation_checkpointing=ckpt, gradient_accumulation_steps=2, shards=shards
        )
        if micro:
            break
    else:
        return None
    params = accounting.param_count(config)
    batch, accumulation = batch_layout(params, micro, block_size, gpus)
    tokens_per_step = batch * block_size * accumulation
    tokens = TOKENS_PER_PARAM * params
    if hours:
        tokens = tokens_per_second(config, device, mfu, ckpt) * gpus * hours * 3600
    iters = max(1, int(tokens // tokens_per_step))
    return plan_run(
        config,
        device,
        batch,
        accumulation,
        iters,
        gpus=gpus,
        mfu=mfu,
        unique_tokens=unique_tokens,
        parallelism=parallelism,
        law=law,
    )


def recommend(candidates: list[RunPlan], unique_tokens: int | None, hours: float | None) -> tuple[RunPlan, str]:
    """The run to choose, and why. With a time budget: the lowest predicted loss in that time
    (model size against tokens, repeats discounted). Without: the compute-optimal model for the
    data, the largest whose 20 tokens per parameter fit in one epoch."""
    if not candidates:
        raise ConfigError("no model of the standard shapes fits this GPU, even with activation checkpointing")
    if hours:
        best = min(candidates, key=lambda c: c.predicted_loss)
        why = (
            f"lowest predicted loss in {hours:g} h: {best.total_tokens / 1e9:.1f}B tokens ("
            + (f"{best.epochs:.2f} epochs of your data, " if best.epochs else "")
            + f"{best.tokens_per_param:.0f} tokens per parameter)"
        )
    else:
        one_epoch = [c for c in candidates if c.total_tokens <= unique_tokens]
        best = max(one_epoch, key=lambda c: c.params) if one_epoch else min(candidates, key=lambda c: c.params)
        four = [c for c in candidates if c.total_tokens <= 4 * unique_tokens]
        bigger = max(four, key=lambda c: c.params) if four else best
        why = (
            f"compute-optimal for {unique_tokens / 1e9:.3g}B tokens: {TOKENS_PER_PARAM} tokens per parameter "
            f"within one epoch, {best.hours:.0f} h"
        )
        if bigger is not best:
            why += (
                f"; repeating the data up to 4 times (little loss, Muennighoff et al. 2023) would allow "
                f"{bigger.params / 1e6:,.0f}M parameters in {bigger.hours:.0f} h"
            )
    if best.parallelism == "fsdp":
        why += "; it fits only sharded over the GPUs with FSDP (parallelism='fsdp')"
    if best.activation_checkpointing:
        why += "; it fits only with activation checkpointing"
    return best, why


MEMORY_TOLERANCE = 0.10  # a measured peak further than this from the plan's is worth a warning


def plan_check(
    *,
    iter_num: int,
    predicted: "accounting.MemoryEstimate",
    measured: tuple[float, float] | None,
    planned_mfu: float,
    measured_mfu: float | None,
) -> dict:
    """The run's plan against what it measured once it ran a few steps: allocated and reserved
    peaks in GiB (None on a CPU, which has no allocator to read) and MFU."""
    check = {
        "iter": iter_num,
        "predicted_allocated_gib": round(predicted.total / GIB, 3),
        "predicted_reserved_gib": round(predicted.reserved / GIB, 3),
        "measured_allocated_gib": None,
        "measured_reserved_gib": None,
        "planned_mfu": planned_mfu,
        "measured_mfu": measured_mfu,
    }
    if measured is not None:
        check["measured_allocated_gib"] = round(measured[0] / GIB, 3)
        check["measured_reserved_gib"] = round(measured[1] / GIB, 3)
    return check


def plan_check_lines(check: dict) -> tuple[str, str | None]:
    """The line train.py prints once, and a warning when a measured peak is more than
    MEMORY_TOLERANCE from its prediction (or None)."""
    mfu = "n/a" if check["measured_mfu"] is None else f"{100 * check['measured_mfu']:.1f}%"
    line = f"plan check at iteration {check['iter']}: MFU {mfu} measured ({100 * check['planned_mfu']:.0f}% planned)"
    if check["measured_allocated_gib"] is None:
        return line + "; memory is not measured on this device (no GPU allocator to read)", None
    off = []
    for kind in ("allocated", "reserved"):
        measured, predicted = check[f"measured_{kind}_gib"], check[f"predicted_{kind}_gib"]
        line += f"; peak {kind} {measured:.2f} GiB measured, {predicted:.2f} predicted"
        if abs(predicted - measured) > MEMORY_TOLERANCE * measured:
            off.append(f"{kind} {100 * (predicted - measured) / measured:+.0f}%")
    warning = None
    if off:
        warning = (
            f"the memory model is off for this run ({', '.join(off)} against the measured peak); plan.py's "
            "figures for it will be off by as much: python bench.py --calibrate measures this GPU"
        )
    return line, warning


def startup_summary(
    config: GPTConfig, settings, world_size: int, dtype: str, peak_flops: float | None, free_bytes: float | None
) -> tuple[list[str], str | None]:
    """What train.py prints before it allocates the model on the device (settings: its
    TrainSettings), and, when the predicted peak clearly exceeds the device's free memory, the
    one-line refusal with the fix."""
    batch_size, gradient_accumulation_steps = settings.batch_size, settings.gradient_accumulation_steps
    max_iters, compile = settings.max_iters, settings.compile
    params = accounting.param_count(config)
    micro_steps = gradient_accumulation_steps // world_size
    ckpt = config.activation_checkpointing
    shards = world_size if settings.parallelism == "fsdp" else 1
    peak = accounting.training_memory(
        config, batch_size, dtype, compile, ckpt, micro_steps, shards, settings.optimizer
    ).total
    tokens = batch_size * config.block_size * gradient_accumulation_steps * max_iters
    line = (
        f"plan: {params:,} parameters, {accounting.flops_per_token(config) / 1e6:,.1f} MFLOPs per token; "
        f"{tokens:,} tokens = {tokens / params:.1f} per parameter; predicted GPU peak {peak / GIB:.2f} GiB"
    )
    if free_bytes is not None:
        line += f" ({free_bytes / GIB:.1f} GiB free)"
    if peak_flops:
        rate = DEFAULT_MFU * peak_flops / accounting.flops_per_token(config) / recompute_factor(config, ckpt)
        line += f"; about {tokens / rate / world_size / 3600:,.1f} h at {100 * DEFAULT_MFU:.0f}% MFU"
    if free_bytes is None or peak <= 1.1 * free_bytes:  # within the model's error: let the run find out
        return [line], None
    device = Device("this GPU", free_bytes / GIB + accounting.CONTEXT_RESERVE / GIB, 0.0)
    fit = max_micro_batch(config, device, dtype, compile, ckpt, micro_steps, shards, optimizer=settings.optimizer)
    if fit:
        micro = 2 ** int(math.log2(fit))
        accumulation = gradient_accumulation_steps * batch_size // micro
        fix = f"use batch_size={micro} with gradient_accumulation_steps={accumulation} (the same tokens per step)" + (
            "" if ckpt else ", or activation_checkpointing=1"
        )
    elif not ckpt and max_micro_batch(
        replace(config, activation_checkpointing=1),
        device,
        dtype,
        compile,
        1,
        micro_steps,
        shards,
        optimizer=settings.optimizer,
    ):
        fix = "set activation_checkpointing=1 with a smaller batch_size"
    else:
        fix = "the model does not fit this GPU even at batch_size=1: choose a smaller one (python plan.py)"
    refusal = (
        f"predicted peak memory {peak / GIB:.1f} GiB exceeds the {free_bytes / GIB:.1f} GiB free on the "
        f"device at batch_size={batch_size}; {fix}"
    )
    return [line], refusal
