"""
Sizing, in arithmetic only (no torch: plan.py answers in well under a second): a run's figures on
some GPUs (memory, the largest micro-batch, tokens, FLOPs, hours, cost, predicted loss), and the
search for the model to train within a budget (FLOPs, or hours on some GPUs) and the unique tokens
you have. Memory is memory.py's, FLOPs flops.py's, GPUs hardware.py's; the losses come from a scaling
law with repeated data discounted (scaling.py), so they rank the options rather than forecast a run.
"""

import math
from dataclasses import asdict, dataclass, field, replace

from fitgpt import flops, hardware, memory
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError
from fitgpt.formatting import GIB, human_count
from fitgpt.hardware import Device
from fitgpt.scaling import DEFAULT_LAW, EXCESS_DECAY, REPEAT_DECAY, Law, predicted_loss, tokens_per_step_for

MIN_STEPS = 100  # a budget too small for this many steps of GPT-3's batch gets smaller steps
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


def tokens_per_second(config: GPTConfig, device: Device, mfu: float, activation_checkpointing: int = 0) -> float:
    """One GPU's training throughput at this MFU (model FLOPs, recomputation not counted as useful)."""
    return (
        mfu
        * device.peak_flops
        / flops.flops_per_token(config)
        / flops.recompute_factor(config, activation_checkpointing)
    )


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
    tokens_per_step: int
    total_tokens: int
    unique_tokens: int | None
    epochs: float | None
    tokens_per_param: float
    train_flops: float
    predicted_loss: float
    parallelism: str = "ddp"
    # on a device (None without one)
    peak_memory_gib: float | None = None  # allocated (torch.cuda.max_memory_allocated)
    peak_reserved_gib: float | None = None  # reserved by the caching allocator: what must fit
    usable_memory_gib: float | None = None
    fits: bool | None = None
    max_micro_batch: int | None = None
    mfu: float | None = None
    mfu_source: str | None = None
    tokens_per_s: float | None = None
    hours: float | None = None
    memory: dict = field(default_factory=dict)
    usd: float | None = None  # hours x GPUs x the price given (plan.py --usd_per_gpu_hour)
    # a searched option's
    binding: str = ""
    name: str = ""  # GPT-2's name for the shape, where it has one

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Terms:
    """What a plan is made on: the GPUs (a device, None for tokens, FLOPs and loss alone; how many
    train together), the MFU to assume (None: hardware.mfu_for's), the unique tokens of data (None:
    fresh data), the scaling law the losses come from, and the price of a GPU-hour (None: no cost)."""

    device: Device | None = None
    gpus: int = 1
    mfu: float | None = None
    unique_tokens: int | None = None
    law: Law = DEFAULT_LAW
    usd_per_gpu_hour: float | None = None


@dataclass(frozen=True)
class RunSettings:
    """A run's settings as far as a plan reads them: TrainSettings' names, so a TrainSettings serves
    too (plan.py's evaluation of a config), and this light record serves the search."""

    batch_size: int
    gradient_accumulation_steps: int  # summed over the GPUs
    max_iters: int
    compile: bool = True
    activation_checkpointing: int = 0
    loss_chunks: int = 0
    optimizer: str = "adamw"
    parallelism: str = "ddp"


def plan_run(config: GPTConfig, s, terms: Terms, dtype: str = "bf16") -> RunPlan:
    """The figures of a run with these settings (RunSettings or TrainSettings) on terms.gpus GPUs
    with DDP, or with FSDP (per-GPU memory: the model state divided over the GPUs). Without a
    device, its tokens, FLOPs and loss only."""
    params = flops.param_count(config)
    tokens_per_step = s.batch_size * config.block_size * s.gradient_accumulation_steps
    total = tokens_per_step * s.max_iters
    plan = RunPlan(
        params=params,
        **{name: getattr(config, name) for name in ("n_layer", "n_embd", "n_head")},
        **{
            name: getattr(s, name) for name in ("batch_size", "gradient_accumulation_steps", "activation_checkpointing")
        },
        tokens_per_step=tokens_per_step,
        total_tokens=total,
        unique_tokens=terms.unique_tokens,
        epochs=round(total / terms.unique_tokens, 3) if terms.unique_tokens else None,
        tokens_per_param=round(total / params, 2),
        train_flops=float(flops.flops_per_token(config) * total),
        predicted_loss=predicted_loss(params, total, terms.unique_tokens, terms.law),
        parallelism=s.parallelism,
    )
    return plan if terms.device is None else on_device(plan, config, memory.Step.of(s, dtype, terms.gpus), terms)


def on_device(plan: RunPlan, config: GPTConfig, step: memory.Step, terms: Terms) -> RunPlan:
    """The plan with its memory and time on terms.device: peaks, whether they fit, the largest
    micro-batch that would, the MFU, throughput, hours and cost."""
    device, gpus = terms.device, terms.gpus
    estimate = memory.training_memory(config, step)
    usable = memory.usable_memory(device.memory_gib)
    mfu, source = hardware.mfu_for(device, plan.params, terms.mfu)
    rate = tokens_per_second(config, device, mfu, step.activation_checkpointing) * gpus
    hours = round(plan.total_tokens / rate / 3600, 2) if rate else math.inf
    allocated, reserved = device.peaks(estimate)
    return replace(
        plan,
        peak_memory_gib=round(allocated / GIB, 2),
        peak_reserved_gib=round(reserved / GIB, 2),
        usable_memory_gib=round(usable / GIB, 2),
        fits=reserved <= usable,
        max_micro_batch=memory.max_micro_batch(config, device, step),
        mfu=mfu,
        mfu_source=source,
        tokens_per_s=round(rate, 1),
        hours=hours,
        memory=estimate.breakdown_gib(),
        usd=round(hours * gpus * terms.usd_per_gpu_hour, 2) if terms.usd_per_gpu_hour else None,
    )


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


def fitting_way(config: GPTConfig, terms: Terms, limit: int) -> tuple[str, int, int] | None:
    """(parallelism, activation_checkpointing, the largest micro-batch that fits, at most limit) of
    the first way this model fits on terms.device: plain DDP, then checkpointing every block, then
    (on several GPUs) sharding with FSDP, then both; None when none does."""
    gpus = terms.gpus
    ways = [("ddp", 0), ("ddp", 1)] + ([("fsdp", 0), ("fsdp", 1)] if gpus > 1 else [])
    for parallelism, ckpt in ways:
        step = memory.Step(1, activation_checkpointing=ckpt, micro_steps=2, shards=gpus if parallelism == "fsdp" else 1)
        micro = memory.max_micro_batch(config, terms.device, step, limit)
        if micro:
            return parallelism, ckpt, micro
    return None


def candidate(config: GPTConfig, budget: Budget, terms: Terms) -> RunPlan | None:
    """A model's run within the budget: as many tokens as the FLOPs or hours allow, but no more
    than 1 + R*_D epochs of the data (their value is spent); about GPT-3's tokens per step; on a
    device, the largest power-of-two micro-batch that fits (checkpointing, then FSDP, only when
    needed). binding names what limits it; a model that does not fit at all is 'memory'. None
    when the budget does not hold one step."""
    device, gpus, block_size = terms.device, terms.gpus, config.block_size
    params = flops.param_count(config)
    step_tokens = tokens_per_step_for(params)
    limit = max(1, step_tokens // block_size // gpus)
    way = fitting_way(config, terms, limit) if device else ("ddp", 0, limit)
    parallelism, ckpt, fit = way or ("fsdp" if gpus > 1 else "ddp", 1, 1)  # not fitting: its leanest way
    limits = {}
    if budget.flops:
        limits["compute"] = budget.flops / flops.flops_per_token(config)
    if budget.hours and device:
        rate = tokens_per_second(config, device, hardware.mfu_for(device, params, terms.mfu)[0], ckpt) * gpus
        limits["time"] = rate * budget.hours * 3600
    if terms.unique_tokens:
        limits["data"] = (1 + REPEAT_DECAY) * terms.unique_tokens
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
    run = RunSettings(batch, accumulation, iters, activation_checkpointing=ckpt, parallelism=parallelism)
    plan = plan_run(config, run, terms)
    shape = (config.n_layer, config.n_embd, config.n_head)
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


def data_budget(configs: list[GPTConfig], unique: int, law: Law) -> float:
    """The compute one epoch of `unique` tokens supports compute-optimally: that of one epoch of the
    largest model that is, trained so, the lowest-loss model for its own compute."""
    sizes = [(flops.param_count(config), flops.flops_per_token(config)) for config in configs]
    budget = sizes[0][1] * unique
    for params, flops_per_token in sizes:
        compute = flops_per_token * unique
        winner = min(sizes, key=lambda s: predicted_loss(s[0], compute / s[1], unique, law))
        if winner[0] == params:
            budget = compute
    return budget


def search(*, arch: str, vocab_size: int, budget: Budget, terms: Terms) -> Search:
    """Every shape of the family (and GPT-2's) within the budget; without one, within the compute one
    epoch of the data supports, so the answer is the model compute-optimal for the data."""
    configs = sorted(
        (shape_config(s, arch, vocab_size) for s in {*FAMILY, *GPT2_SHAPES}), key=lambda c: flops.param_count(c)
    )
    data_only = not (budget.flops or budget.hours)
    if data_only:  # among the shapes that fit: a larger one would want more compute than the GPU can hold
        fitting = [c for c in configs if not terms.device or fitting_way(c, terms, 1)]
        budget = Budget(flops=data_budget(fitting or configs, terms.unique_tokens, terms.law))

    def options(budget: Budget, unique: int | None) -> list[RunPlan]:
        plans = [candidate(c, budget, replace(terms, unique_tokens=unique)) for c in configs]
        return [p for p in plans if p]

    candidates = options(budget, terms.unique_tokens)
    if not candidates:
        raise ConfigError(
            f"not one step of {terms.gpus * 1024:,} tokens of the smallest model fits in this budget; "
            "give more --flops, --hours or --tokens"
        )
    best = choose(candidates)
    found = Search(candidates, best, budget, data_only)
    unconstrained = min(candidates, key=lambda c: (c.predicted_loss, c.train_flops))
    if unconstrained.params > best.params:
        found.unconstrained = unconstrained
    if terms.unique_tokens and best.epochs > 1:
        found.fresh = choose(options(budget, None))
    if data_only:
        more = Budget(flops=4 * budget.flops)
        found.more_epochs = choose(options(more, terms.unique_tokens))
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
