"""
Sizing a run, in arithmetic only (no torch: plan.py answers in well under a second): what a config
costs on a GPU (memory, tokens, FLOPs, hours), and which model to train for a budget (FLOPs, or
hours on some GPUs) and the unique tokens you have, written out as a config. The figures come from
accounting.py; the losses from a published scaling law with repeated data discounted, so they rank
the options rather than forecast a run.
"""

import math
from dataclasses import asdict, dataclass, field, replace

from fitgpt import accounting
from fitgpt.accounting import GIB
from fitgpt.architecture import GPTConfig
from fitgpt.calibration import Calibration, for_gpu
from fitgpt.calibration import load as load_calibration
from fitgpt.errors import ConfigError
from fitgpt.runs import human_count
from fitgpt.scaling import BESIROGLU, Law

DEFAULT_LAW = BESIROGLU
# a GPU plan.py's table does not list (--vram_gb and --peak_tflops): the H100's measured figure
UNKNOWN_GPU_MFU = (0.40, "assumed: fitgpt's measured H100 figure; not measured on this GPU")
# Muennighoff et al. 2023, "Scaling Data-Constrained Language Models" (eq. 5 and their fit): a
# repeated token is worth less than a fresh one, decaying with the repeats R_D = D / U_D - 1 with
# constant R*_D = 15.4; parameters beyond U_N, the model compute-optimal for the unique data,
# decay faster, with R*_N = 5.3 in multiples of U_N. plan.py counts each up to one decay constant:
# past it the next epoch (or parameter) is worth under 1/e of a fresh one, and nothing is spent on it.
REPEAT_DECAY = 15.4
EXCESS_DECAY = 5.3
WARMUP_TOKENS = 375e6  # GPT-3's warmup, which nanoGPT's 715 iterations x 0.5M tokens also is
MIN_STEPS = 100  # a budget too small for this many steps of GPT-3's batch gets smaller steps
# GPT-3's learning rates by size (Brown et al. 2020, table 2.1), interpolated in log-log
GPT3_LR = ((125e6, 6e-4), (350e6, 3e-4), (760e6, 2.5e-4), (1.3e9, 2e-4), (2.7e9, 1.6e-4), (6.7e9, 1.2e-4), (13e9, 1e-4))
ARCHS = {"gpt2": dict(bias=False), "llama": dict(bias=False, pos_emb="rope", norm="rmsnorm", mlp="swiglu")}


def family_shape(width: int) -> tuple[int, int, int]:
    """(n_layer, n_embd, n_head) of the search's family at this width: depth from width at a fixed
    aspect ratio of 64 (nanochat's --depth: width = 64 x depth), heads of 64 channels (128 from 2048
    wide; 32 where the width is an odd multiple of 32, which keeps the small models' steps short)."""
    head = 128 if width >= 2048 else 64 if width % 64 == 0 else 32
    return max(2, round(width / 64)), width, width // head


# widths 32 apart below 512 (where the embedding is most of the model), 64 apart to 2048, 128 beyond:
# at GPT-2's vocabulary, 8.8M to 104B parameters in steps of at most 1.28x
FAMILY = tuple(family_shape(w) for w in (*range(160, 512, 32), *range(512, 2048, 64), *range(2048, 8193, 128)))
# GPT-2's sizes (Radford et al. 2019), rows users recognise beside the family's
GPT2_SHAPES = {
    (12, 768, 12): "GPT-2 small",
    (24, 1024, 16): "GPT-2 medium",
    (36, 1280, 20): "GPT-2 large",
    (48, 1600, 25): "GPT-2 XL",
}


@dataclass(frozen=True)
class Device:
    name: str
    memory_gib: float
    peak_flops: float  # dense bf16, FLOP/s
    mfu: tuple[float, str] = UNKNOWN_GPU_MFU  # accounting.GPU.mfu: (figure, its source)
    calibration: Calibration | None = None  # measured on this GPU: its MFU by size and memory factors

    def peaks(self, estimate: accounting.MemoryEstimate) -> tuple[float, float]:
        """(allocated, reserved) peak bytes of a step on this device: the memory model's, scaled by
        the calibration's measured factors when there is one."""
        cal = self.calibration
        allocated = estimate.total * (cal.allocated_factor or 1.0 if cal else 1.0)
        return allocated, estimate.reserved * (cal.reserved_factor or 1.0 if cal else 1.0)


def device_for(
    gpu: str | None, vram_gb: float | None = None, peak_tflops: float | None = None, calibration: str | None = None
) -> Device:
    """A GPU of the table (plan.py --gpu), or one described by --vram_gb (decimal GB, as datasheets
    print it) and --peak_tflops; with the calibration file given, or else the one saved for that
    GPU in calibration/ (bench.py --calibrate)."""
    device = table_device(gpu, vram_gb, peak_tflops)
    measured = load_calibration(calibration) if calibration else for_gpu(gpu.lower() if gpu else None)
    return replace(device, calibration=measured)


def table_device(gpu: str | None, vram_gb: float | None, peak_tflops: float | None) -> Device:
    memory = vram_gb * 1e9 / GIB if vram_gb else None
    if gpu:
        entry = accounting.gpu_by_key(gpu)
        if entry is None:
            names = ", ".join(g.key for g in accounting.GPUS)
            raise ConfigError(f"unknown --gpu {gpu!r}; use one of {names}, or --vram_gb and --peak_tflops")
        peak = (peak_tflops or entry.tflops["bf16"]) * 1e12
        name = entry.name + (f" with {vram_gb:g} GB ({memory:.1f} GiB)" if memory else "")
        return Device(name, memory or entry.memory_gib, peak, entry.mfu)
    if not (vram_gb and peak_tflops):
        raise ConfigError("name a GPU with --gpu (e.g. h100, mi300x, rtx4090) or give --vram_gb and --peak_tflops")
    return Device(f"a {vram_gb:g} GB ({memory:.1f} GiB) GPU at {peak_tflops:g} TFLOP/s", memory, peak_tflops * 1e12)


def device_named(name: str) -> Device:
    """The device torch reports by this name (train.py), with the table's MFU when it is listed
    and the calibration measured on it when one was saved."""
    gpu = accounting.gpu_for_device_name(name)
    if gpu is None:
        return Device(name, 0.0, 0.0)
    return Device(name, gpu.memory_gib, gpu.peak_flops() or 0.0, gpu.mfu, for_gpu(gpu.key))


def mfu_for(device: Device, params: float, override: float | None = None) -> tuple[float, str]:
    """The MFU to expect training a model of `params` parameters on this device, and where that
    figure comes from: the override (plan.py --mfu), else the GPU table's, measured or assumed.
    Every MFU plan.py and train.py use comes from here, so a calibration measured on the user's own
    GPU, by model size, plugs in at this one place."""
    if override:
        return override, "set with --mfu"
    if device.calibration and device.peak_flops:
        return device.calibration.achieved_flops(params) / device.peak_flops, device.calibration.source()
    return device.mfu


def effective(x: float, unique: float, decay: float) -> float:
    """What x tokens (or parameters) drawn from `unique` are worth in fresh ones: Muennighoff et
    al.'s U + U R* (1 - exp(-R / R*)), R = x / U - 1 the repeats (or excess) beyond U, counted up to
    one decay constant."""
    if x <= unique:
        return x
    repeats = min(x / unique - 1, decay)
    return unique + unique * decay * (1 - math.exp(-repeats / decay))


def effective_tokens(tokens: float, unique: float | None) -> float:
    """Tokens worth of fresh data that `tokens` of training on `unique` tokens is: about 4 epochs
    are nearly as good as new data, 16 worth about 11 (Muennighoff et al. 2023's R*_D)."""
    return effective(tokens, unique, REPEAT_DECAY) if unique else tokens


def effective_params(params: float, unique: float | None, law: Law = DEFAULT_LAW) -> float:
    """Parameters worth of a model trained on `unique` tokens: beyond U_N, the model the law finds
    compute-optimal for them, each is worth less (Muennighoff et al. 2023's R*_N)."""
    return effective(params, law.params_for(unique), EXCESS_DECAY) if unique else params


def predicted_loss(params: float, tokens: float, unique: float | None = None, law: Law = DEFAULT_LAW) -> float:
    """Loss (nats per token) the law predicts for `params` parameters trained on `tokens` tokens,
    repeats of `unique` unique tokens discounted on both sides: never below the same run's on
    fresh data. Approximate, and on the law's own data."""
    return law.loss(effective_params(params, unique, law), effective_tokens(tokens, unique))


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
    """The largest micro-batch whose predicted reserved peak fits the device, at most limit (0: not
    even one sequence)."""
    usable = accounting.usable_memory(device.memory_gib)

    def fits(b):
        memory = accounting.training_memory(
            config,
            b,
            dtype=dtype,
            compile=compile,
            activation_checkpointing=activation_checkpointing,
            gradient_accumulation_steps=gradient_accumulation_steps,
            shards=shards,
            optimizer=optimizer,
        )
        return device.peaks(memory)[1] <= usable

    if not fits(1):
        return 0
    low, high = 1, limit
    while low < high:  # the peak grows with the micro-batch: bisect for the last one that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


@dataclass
class RunPlan:
    """A run's figures (the keys of plan.py --json). Without a device (plan.py --flops alone) the
    memory and time fields are None; binding says what limits a searched option's tokens: its
    compute or time budget, the data (repeats past their value), or memory (it does not fit)."""

    params: int
    n_layer: int
    n_embd: int
    n_head: int
    batch_size: int | None
    gradient_accumulation_steps: int | None
    activation_checkpointing: int
    peak_memory_gib: float | None  # allocated (torch.cuda.max_memory_allocated)
    peak_reserved_gib: float | None  # reserved by the caching allocator: what must fit
    usable_memory_gib: float | None
    fits: bool | None
    max_micro_batch: int | None
    tokens_per_step: int
    total_tokens: int
    unique_tokens: int | None
    epochs: float | None
    tokens_per_param: float
    train_flops: float
    mfu: float | None
    mfu_source: str | None
    tokens_per_s: float | None
    hours: float | None
    predicted_loss: float
    memory: dict = field(default_factory=dict)
    parallelism: str = "ddp"
    binding: str = ""
    usd: float | None = None  # hours x GPUs x the price given (plan.py --usd_per_gpu_hour)
    name: str = ""  # GPT-2's name for the shape, where it has one

    def to_dict(self) -> dict:
        return asdict(self)


def plan_run(
    config: GPTConfig,
    device: Device | None,
    batch_size: int,
    gradient_accumulation_steps: int,
    max_iters: int,
    *,
    dtype: str = "bf16",
    compile: bool = True,
    gpus: int = 1,
    mfu: float | None = None,
    unique_tokens: int | None = None,
    parallelism: str = "ddp",
    law: Law = DEFAULT_LAW,
    optimizer: str = "adamw",
    usd_per_gpu_hour: float | None = None,
) -> RunPlan:
    """The figures of a run with these settings (config.activation_checkpointing included) on
    `gpus` GPUs with DDP, or with FSDP (per-GPU memory: the model state divided over the GPUs);
    mfu: None for mfu_for's figure. Without a device, its tokens, FLOPs and loss only."""
    ckpt = config.activation_checkpointing
    params = accounting.param_count(config)
    tokens_per_step = batch_size * config.block_size * gradient_accumulation_steps
    total = tokens_per_step * max_iters
    plan = RunPlan(
        params=params,
        n_layer=config.n_layer,
        n_embd=config.n_embd,
        n_head=config.n_head,
        batch_size=batch_size,
        gradient_accumulation_steps=gradient_accumulation_steps,
        activation_checkpointing=ckpt,
        peak_memory_gib=None,
        peak_reserved_gib=None,
        usable_memory_gib=None,
        fits=None,
        max_micro_batch=None,
        tokens_per_step=tokens_per_step,
        total_tokens=total,
        unique_tokens=unique_tokens,
        epochs=round(total / unique_tokens, 3) if unique_tokens else None,
        tokens_per_param=round(total / params, 2),
        train_flops=float(accounting.flops_per_token(config) * total),
        mfu=None,
        mfu_source=None,
        tokens_per_s=None,
        hours=None,
        predicted_loss=predicted_loss(params, total, unique_tokens, law),
        parallelism=parallelism,
    )
    if device is None:
        return plan
    micro_steps = max(1, gradient_accumulation_steps // gpus)
    shards = gpus if parallelism == "fsdp" else 1
    settings = dict(dtype=dtype, compile=compile, activation_checkpointing=ckpt, shards=shards, optimizer=optimizer)
    memory = accounting.training_memory(config, batch_size, gradient_accumulation_steps=micro_steps, **settings)
    usable = accounting.usable_memory(device.memory_gib)
    mfu, source = mfu_for(device, params, mfu)
    rate = tokens_per_second(config, device, mfu, ckpt) * gpus
    hours = round(total / rate / 3600, 2) if rate else math.inf
    allocated, reserved = device.peaks(memory)
    return replace(
        plan,
        peak_memory_gib=round(allocated / GIB, 2),
        peak_reserved_gib=round(reserved / GIB, 2),
        usable_memory_gib=round(usable / GIB, 2),
        fits=reserved <= usable,
        max_micro_batch=max_micro_batch(config, device, gradient_accumulation_steps=micro_steps, **settings),
        mfu=mfu,
        mfu_source=source,
        tokens_per_s=round(rate, 1),
        hours=hours,
        memory=memory.breakdown_gib(),
        usd=round(hours * gpus * usd_per_gpu_hour, 2) if usd_per_gpu_hour else None,
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


def batch_layout(sequences: int, micro_batch: int, gpus: int) -> tuple[int, int]:
    """(batch_size, gradient_accumulation_steps summed over the GPUs) for about `sequences`
    sequences a step: the largest power-of-two micro-batch that fits and is at most each GPU's
    share of the step, whose step comes within 10 % of it (else the closest), and the
    accumulation that fills the step. Never a micro-batch above the step."""
    largest = 2 ** int(math.log2(max(1, min(micro_batch, sequences // gpus))))
    layouts = []
    for micro in (2**k for k in range(int(math.log2(largest)), -1, -1)):
        accumulation = gpus * max(1, round(sequences / (micro * gpus)))
        layouts.append((abs(math.log(micro * accumulation / sequences)), micro, accumulation))
        if layouts[-1][0] <= math.log(1.1):
            return micro, accumulation
    _, micro, accumulation = min(layouts, key=lambda layout: layout[0])
    return micro, accumulation


@dataclass(frozen=True)
class Budget:
    """What a search may spend: FLOPs, hours, or both (the smaller binds)."""

    flops: float | None = None
    hours: float | None = None


def fitting_way(config: GPTConfig, device: Device, gpus: int, limit: int) -> tuple[str, int, int] | None:
    """(parallelism, activation_checkpointing, the largest micro-batch that fits, at most limit) of
    the first way this model fits: plain DDP, then checkpointing every block, then (on several
    GPUs) sharding with FSDP, then both; None when none does."""
    ways = [("ddp", 0), ("ddp", 1)] + ([("fsdp", 0), ("fsdp", 1)] if gpus > 1 else [])
    for parallelism, ckpt in ways:
        micro = max_micro_batch(
            replace(config, activation_checkpointing=ckpt),
            device,
            activation_checkpointing=ckpt,
            gradient_accumulation_steps=2,
            shards=gpus if parallelism == "fsdp" else 1,
            limit=limit,
        )
        if micro:
            return parallelism, ckpt, micro
    return None


def candidate(
    shape: tuple[int, int, int],
    *,
    arch: str,
    vocab_size: int,
    device: Device | None,
    gpus: int,
    budget: Budget,
    unique_tokens: int | None,
    mfu: float | None = None,
    law: Law = DEFAULT_LAW,
    usd_per_gpu_hour: float | None = None,
    block_size: int = 1024,
) -> RunPlan | None:
    """One shape's run within the budget: as many tokens as the FLOPs or hours allow, but no more
    than 1 + R*_D epochs of the data (their value is spent); about GPT-3's tokens per step; on a
    device, the largest power-of-two micro-batch that fits (checkpointing, then FSDP, only when
    needed). binding names what limits it; a shape that does not fit at all is 'memory'. None
    when the budget does not hold one step."""
    config = shape_config(shape, arch, vocab_size, block_size)
    params = accounting.param_count(config)
    step_tokens = tokens_per_step_for(params)
    limit = max(1, step_tokens // block_size // gpus)
    way = fitting_way(config, device, gpus, limit) if device else ("ddp", 0, limit)
    parallelism, ckpt, fit = way or ("fsdp" if gpus > 1 else "ddp", 1, 1)  # not fitting: its leanest way
    config = replace(config, activation_checkpointing=ckpt)
    limits = {}
    if budget.flops:
        limits["compute"] = budget.flops / accounting.flops_per_token(config)
    if budget.hours and device:
        rate = tokens_per_second(config, device, mfu_for(device, params, mfu)[0], ckpt) * gpus
        limits["time"] = rate * budget.hours * 3600
    if unique_tokens:
        limits["data"] = (1 + REPEAT_DECAY) * unique_tokens
    binding, tokens = min(limits.items(), key=lambda item: item[1])
    step_tokens = min(step_tokens, max(gpus * block_size, 2 ** int(math.log2(max(1, tokens / MIN_STEPS)))))
    batch, accumulation = batch_layout(step_tokens // block_size, fit, gpus)
    step = batch * block_size * accumulation
    iters = int(tokens // step)
    if binding == "data":  # the last step whole (within the budget): options held by the data then tie
        budget_tokens = min((v for k, v in limits.items() if k != "data"), default=math.inf)
        iters = int(min(math.ceil(tokens / step), budget_tokens // step))
    if not iters:
        return None  # not one step within the budget
    plan = plan_run(
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
        usd_per_gpu_hour=usd_per_gpu_hour,
    )
    return replace(plan, binding="memory" if device and not way else binding, name=GPT2_SHAPES.get(shape, ""))


@dataclass
class Search:
    """The options for a budget and the one to choose: candidates (every shape searched, smallest
    first), best, the budget searched (without one, the compute one epoch of the data supports),
    and what would change the answer (see explain)."""

    candidates: list[RunPlan]
    best: RunPlan
    budget: Budget
    data_only: bool = False  # the budget is the data's: no FLOPs or hours were given
    unconstrained: RunPlan | None = None  # the best had memory been no limit, when that is another
    fresh: RunPlan | None = None  # the best for the same budget with fresh data, when the best repeats
    more_epochs: RunPlan | None = None  # data's budget only: the best for 4x the compute


def choose(candidates: list[RunPlan]) -> RunPlan:
    """The lowest predicted loss among the options that fit (or all, without a device); of equal
    losses (options held by the data, whose repeats and excess parameters are spent), the cheapest
    in FLOPs: compute past the data's value buys nothing."""
    fitting = [c for c in candidates if c.fits is not False]
    if not fitting:
        raise ConfigError("no model of the search's family fits this GPU, even with activation checkpointing (or FSDP)")
    return min(fitting, key=lambda c: (c.predicted_loss, c.train_flops))


def data_budget(shapes: list[tuple[int, int, int]], arch: str, vocab_size: int, unique: int, law: Law) -> float:
    """The compute one epoch of `unique` tokens supports compute-optimally: that of one epoch of the
    largest shape that is, trained so, the lowest-loss shape for its own compute."""
    sizes = []
    for shape in shapes:
        config = shape_config(shape, arch, vocab_size)
        sizes.append((accounting.param_count(config), accounting.flops_per_token(config)))
    budget = sizes[0][1] * unique
    for params, flops_per_token in sizes:
        flops = flops_per_token * unique
        winner = min(sizes, key=lambda s: predicted_loss(s[0], flops / s[1], unique, law))
        if winner[0] == params:
            budget = flops
    return budget


def search(
    *,
    arch: str,
    vocab_size: int,
    device: Device | None,
    gpus: int,
    budget: Budget,
    unique_tokens: int | None,
    mfu: float | None = None,
    law: Law = DEFAULT_LAW,
    usd_per_gpu_hour: float | None = None,
) -> Search:
    """Every shape of the family (and GPT-2's) within the budget; without one, within the compute one
    epoch of the data supports, so the answer is the model compute-optimal for the data."""
    shapes = sorted({*FAMILY, *GPT2_SHAPES}, key=lambda s: accounting.param_count(shape_config(s, arch, vocab_size)))
    data_only = not (budget.flops or budget.hours)
    if data_only:  # among the shapes that fit: a larger one would want more compute than the GPU can hold
        fitting = [s for s in shapes if not device or fitting_way(shape_config(s, arch, vocab_size), device, gpus, 1)]
        budget = Budget(flops=data_budget(fitting or shapes, arch, vocab_size, unique_tokens, law))

    def options(budget: Budget, unique: int | None) -> list[RunPlan]:
        settings = dict(arch=arch, vocab_size=vocab_size, device=device, gpus=gpus, mfu=mfu, law=law)
        plans = [
            candidate(s, budget=budget, unique_tokens=unique, usd_per_gpu_hour=usd_per_gpu_hour, **settings)
            for s in shapes
        ]
        return [p for p in plans if p]

    candidates = options(budget, unique_tokens)
    if not candidates:
        raise ConfigError(
            f"not one step of {gpus * 1024:,} tokens of the smallest model fits in this budget; "
            "give more --flops, --hours or --tokens"
        )
    best = choose(candidates)
    found = Search(candidates, best, budget, data_only)
    unconstrained = min(candidates, key=lambda c: (c.predicted_loss, c.train_flops))
    if unconstrained.params > best.params:
        found.unconstrained = unconstrained
    if unique_tokens and best.epochs > 1:
        found.fresh = choose(options(budget, None))
    if data_only:
        more = Budget(flops=4 * budget.flops)
        found.more_epochs = choose(options(more, unique_tokens))
    return found


def shown(found: Search, spacing: float = 1.5, each_side: int = 3) -> list[RunPlan]:
    """The rows a table shows: the family's shapes nearest to the best's size times powers of
    `spacing`, the best, and GPT-2's sizes, smallest first."""
    family = [c for c in found.candidates if not c.name or (c.n_layer, c.n_embd, c.n_head) in FAMILY]
    rows = {id(found.best): found.best, **{id(c): c for c in found.candidates if c.name}}
    for k in range(-each_side, each_side + 1):
        target = math.log(found.best.params * spacing**k)
        nearest = min(family, key=lambda c: abs(math.log(c.params) - target))
        rows[id(nearest)] = nearest
    return sorted(rows.values(), key=lambda c: (c.params, c.n_layer))


def explain(found: Search, gpus: int = 1) -> str:
    """Why the best is the best, and what would change the answer: more data, more epochs, more
    memory. One paragraph, for the recommendation line and a written config's header."""
    best, budget = found.best, found.budget
    if found.data_only:
        unique = human_count(best.unique_tokens)
        why = f"compute-optimal for your {unique} tokens, the lowest predicted loss for the {budget.flops:.3g} FLOPs"
        why += " one epoch of them supports"
    else:
        spend = [f"{budget.flops:.3g} FLOPs"] if budget.flops else []
        spend += [f"{budget.hours:g} h"] if budget.hours else []
        why = f"the lowest predicted loss for {' and '.join(spend)}"
    why += f": {human_count(best.total_tokens)} tokens ("
    why += f"{best.epochs:.2f} epochs of your data, " if best.epochs else ""
    why += f"{best.tokens_per_param:.0f} per parameter)"
    if best.hours is not None:
        why += f", {best.hours:,.1f} h at {100 * best.mfu:.0f}% MFU" + (
            ", assumed" if best.mfu_source.startswith("assumed") else ""
        )
    if best.usd is not None:
        why += f", about ${best.usd:,.0f}"
    notes = [why]
    if best.binding == "data":
        spent = best.train_flops / budget.flops if budget.flops else best.hours / budget.hours
        notes.append(
            f"the data binds: {1 + REPEAT_DECAY:.1f} epochs and {1 + EXCESS_DECAY:.1f}x the parameters it supports "
            f"spend what repeats are worth (Muennighoff et al. 2023); the other {1 - spent:.0%} of the budget "
            "would buy nothing"
        )
    fresh = found.fresh
    if fresh and fresh.predicted_loss <= best.predicted_loss - 0.01:
        notes.append(
            f"more data would beat more epochs: with fresh data the same budget would train {fresh.params / 1e6:,.0f}M "
            f"parameters on {human_count(fresh.total_tokens)} tokens, predicted loss {fresh.predicted_loss:.2f} "
            f"against {best.predicted_loss:.2f}"
        )
    more = found.more_epochs
    if more and more.params != best.params:
        notes.append(
            f"with 4x the compute, {more.epochs:.1f} epochs of your data would make {more.params / 1e6:,.0f}M "
            f"parameters the best (predicted loss {more.predicted_loss:.2f}"
            + (f", {more.hours:,.0f} h" if more.hours is not None else "")
            + ")"
        )
    big = found.unconstrained
    if big:
        notes.append(
            f"{big.params / 1e6:,.0f}M parameters would reach {big.predicted_loss:.2f} but do not fit "
            + ("these GPUs" if gpus > 1 else "one GPU; more GPUs (--gpus) with FSDP would hold it")
        )
    if best.parallelism == "fsdp":
        notes.append("it fits only sharded over the GPUs with FSDP (parallelism='fsdp')")
    if best.activation_checkpointing:
        notes.append("it fits only with activation checkpointing")
    return "; ".join(notes)


MEMORY_TOLERANCE = 0.10  # a measured peak further than this from the plan's is worth a warning


def plan_check(
    *,
    iter_num: int,
    config: GPTConfig,
    settings,
    dtype: str,
    world_size: int,
    device_name: str,
    measured: tuple[float, float] | None,
    measured_mfu: float | None,
) -> dict:
    """The run's plan (what startup_summary predicted) against what it measured once it ran a few
    steps: allocated and reserved peaks in GiB (None on a CPU, which has no allocator to read) and MFU."""
    device = device_named(device_name)
    allocated, reserved = device.peaks(accounting.run_memory(config, settings, dtype, world_size))
    check = {
        "iter": iter_num,
        "predicted_allocated_gib": round(allocated / GIB, 3),
        "predicted_reserved_gib": round(reserved / GIB, 3),
        "measured_allocated_gib": None,
        "measured_reserved_gib": None,
        "planned_mfu": round(mfu_for(device, accounting.param_count(config))[0], 4) if device.peak_flops else None,
        "measured_mfu": measured_mfu,
    }
    if measured is not None:
        check["measured_allocated_gib"] = round(measured[0] / GIB, 3)
        check["measured_reserved_gib"] = round(measured[1] / GIB, 3)
    return check


def plan_check_lines(check: dict) -> tuple[str, str | None]:
    """The line train.py prints once, and a warning when a measured peak is more than
    MEMORY_TOLERANCE from its prediction (or None)."""
    if check["measured_mfu"] is None:
        line = f"plan check at iteration {check['iter']}: MFU not known (the device's peak FLOP/s is not)"
    else:
        planned = f"{100 * check['planned_mfu']:.0f}% planned" if check["planned_mfu"] else "none planned"
        line = f"plan check at iteration {check['iter']}: MFU {100 * check['measured_mfu']:.1f}% measured ({planned})"
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
    config: GPTConfig,
    settings,
    world_size: int,
    dtype: str,
    peak_flops: float | None,
    free_bytes: float | None,
    device_name: str = "",
) -> tuple[list[str], str | None]:
    """What train.py prints before it allocates the model on the device (settings: its
    TrainSettings; device_name: as torch reports it), and, when the predicted reserved peak exceeds
    the device's free memory and settings.memory_check is 'refuse', the one-line refusal with the
    fix ('warn': the same as a warning line; 'off': neither)."""
    batch_size, gradient_accumulation_steps = settings.batch_size, settings.gradient_accumulation_steps
    params = accounting.param_count(config)
    ckpt = settings.activation_checkpointing
    device = device_named(device_name)
    allocated, reserved = device.peaks(accounting.run_memory(config, settings, dtype, world_size))
    tokens = batch_size * config.block_size * gradient_accumulation_steps * settings.max_iters
    line = (
        f"plan: {params:,} parameters, {accounting.flops_per_token(config) / 1e6:,.1f} MFLOPs per token; "
        f"{tokens:,} tokens = {tokens / params:.1f} per parameter; predicted GPU peak {allocated / GIB:.2f} GiB "
        f"allocated, {reserved / GIB:.2f} GiB reserved"
    )
    if free_bytes is not None:
        line += f" ({free_bytes / GIB:.1f} GiB free)"
    if device.calibration:
        line += f"; memory scaled by {device.calibration.shown_path}"
    if peak_flops:
        mfu, source = mfu_for(device, params)
        rate = mfu * peak_flops / accounting.flops_per_token(config) / recompute_factor(config, ckpt)
        cal = device.calibration
        where = f"measured on this GPU: {cal.shown_path}" if cal else source.split(":")[0]
        line += f"; about {tokens / rate / world_size / 3600:,.1f} h at {100 * mfu:.0f}% MFU ({where})"
    if free_bytes is None or reserved <= free_bytes or settings.memory_check == "off":
        return [line], None
    free_device = Device("this GPU", free_bytes / GIB + accounting.CONTEXT_RESERVE / GIB, 0.0)
    shards = world_size if settings.parallelism == "fsdp" else 1
    settings_of = dict(
        dtype=dtype,
        compile=settings.compile,
        shards=shards,
        optimizer=settings.optimizer,
        gradient_accumulation_steps=max(1, gradient_accumulation_steps // world_size),
    )
    fit = max_micro_batch(config, free_device, activation_checkpointing=ckpt, **settings_of)
    if fit:
        micro = 2 ** int(math.log2(fit))
        accumulation = gradient_accumulation_steps * batch_size // micro
        fix = f"use batch_size={micro} with gradient_accumulation_steps={accumulation} (the same tokens per step)" + (
            "" if ckpt else ", or activation_checkpointing=1"
        )
    elif not ckpt and max_micro_batch(config, free_device, activation_checkpointing=1, **settings_of):
        fix = "set activation_checkpointing=1 with a smaller batch_size"
    else:
        fix = "the model does not fit this GPU even at batch_size=1: choose a smaller one (python plan.py)"
    message = (
        f"predicted peak memory {reserved / GIB:.1f} GiB reserved ({allocated / GIB:.1f} GiB allocated) exceeds the "
        f"{free_bytes / GIB:.1f} GiB free on the device at batch_size={batch_size}; {fix}"
    )
    if settings.memory_check == "warn":
        return [line, f"WARNING: {message}; starting anyway (memory_check='warn')"], None
    return [line], message + "; or memory_check='warn' to start it anyway"
