"""
Size a run before you start it, without a GPU: memory, tokens, FLOPs, hours and cost.

Choose a model for a budget: FLOPs, or hours on a GPU, and the unique tokens you have (or --data
DIR to count a dataset's); without a budget, the model compute-optimal for your tokens:
    python plan.py --flops 1.21e20 --tokens 1e12
    python plan.py --gpu mi300x --tokens 14.6e9 --hours 72 --write config/fineweb_mi300x_72h.py
    python plan.py --gpu rtx4090 --tokens 10e9 --arch llama --usd_per_gpu_hour 0.4
    python plan.py --gpu h100 --gpus 8 --hours 24          # fresh data: as much as the time can use
Evaluate a run (train.py's defaults where no config is given; the settings below can be set):
    python plan.py config/fineweb_3b_mi300x.py --gpu mi300x --tokens 14.6e9
    python plan.py --n_layer=24 --n_embd=1024 --n_head=16 --batch_size=8 --gpu rtx4090 --json
Fit a scaling law to your own runs (several sizes), then plan with it:
    python plan.py --fit out-sweep/* --params 3e6 --tokens 2e6     # writes fit.json
    python plan.py --law fit.json --gpu rtx4090 --tokens 1e9

The search tries a family of shapes (depth from width at a fixed aspect ratio, as nanochat's
--depth; steps of at most 1.28x in parameters from 9M to 104B) and GPT-2's four sizes, ranks them
by the loss a scaling law predicts (Besiroglu et al. 2024's refit of Chinchilla by default, --law),
repeats discounted on both sides as Muennighoff et al. 2023 measured, and says what binds each:
compute, time, data or memory. Memory is the predicted peak of a training step, allocated and
reserved by the caching allocator (fitgpt/memory.py: counted tensor by tensor, compiled runs
as torch.compile's partitioner saves them; within -3 % and +8 % of 13 peaks measured on an H200,
docs/sizing.md); "fits" is decided on the reserved peak, leaving 1 GiB for the CUDA context and 5 %
for the model's error. Time assumes the GPU table's MFU, measured by fitgpt or an assumption named
as one (--mfu to set yours). A calibration measured on your own GPU (python bench.py --calibrate)
replaces both: --calibration FILE, or calibration/<gpu>.json, found by --gpu's name.
Losses are approximate: a ranking, not a forecast.
"""

import argparse
import dataclasses
import datetime
import json
import math
import os

import configurator
from fitgpt import hardware, memory, planner, scaling
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError, exit_on_error
from fitgpt.formatting import gib, human_count
from fitgpt.settings import TrainSettings
from fitgpt.shards import data_dir_of, find_shards, read_header, read_meta
from fitgpt.tokenization import dataset_vocab_size

# the train.py settings that change a plan; plan.py takes any other (a config file sets them) and ignores it
PLANNED = (
    *GPTConfig.field_names(),
    "activation_checkpointing",
    "loss_chunks",
    "batch_size",
    "gradient_accumulation_steps",
    "max_iters",
    "dtype",
    "compile",
    "optimizer",
    "parallelism",
    "data_dir",
)


def number(low: float, high: float = math.inf, low_open: bool = True, integer: bool = False):
    """An argparse type for a number in (low, high] (or from low, inclusive), refused in one line
    that says the range (argparse names the flag)."""
    kind = "an integer" if integer else "a number"
    allowed = f"{kind} in ({low:g}, {high:g}]" if high < math.inf else f"{kind} {'>' if low_open else '>='} {low:g}"

    def parse(text: str) -> float:
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {text!r}")
        return value

    return parse


def arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    epilog = configurator.help_text(
        TrainSettings,
        dataclasses.asdict(TrainSettings()),
        "model and training settings, as train.py takes them (its others are accepted and change nothing here)",
        names=PLANNED,
    )
    parser = configurator.ArgumentParser(__doc__, epilog=epilog)
    parser.add_argument("--gpu", help="h100, h100-pcie, h200, a100-40, a100-80, mi300x, rtx4090, ... (default h100)")
    parser.add_argument(
        "--vram_gb", type=number(0), help="a GPU not in the table: its memory in GB (1e9 bytes, as datasheets)"
    )
    parser.add_argument("--peak_tflops", type=number(0), help="... and its dense bf16 peak, TFLOP/s")
    parser.add_argument(
        "--gpus", type=number(1, low_open=False, integer=True), default=1, help="GPUs training together (DDP, or FSDP)"
    )
    parser.add_argument(
        "--mfu", type=number(0, 1), help="model FLOPs utilisation to plan with (default: the GPU table's)"
    )
    parser.add_argument("--tokens", type=number(0), help="unique tokens of training data you have")
    parser.add_argument("--data", help="a prepared dataset folder: count its train tokens (and read its vocabulary)")
    parser.add_argument("--flops", type=number(0), help="compute budget: the lowest predicted loss for it")
    parser.add_argument("--hours", type=number(0), help="time budget on the GPUs: the lowest loss in it")
    parser.add_argument("--usd_per_gpu_hour", type=number(0), help="price of one GPU-hour: the cost of each option")
    parser.add_argument("--arch", choices=sorted(planner.ARCHS), default="gpt2", help="block type for the search")
    parser.add_argument(
        "--calibration", metavar="FILE", help="bench.py --calibrate's file: measured MFU by size and memory factors"
    )
    parser.add_argument(
        "--law", default="besiroglu", help="besiroglu (default), chinchilla3 (or hoffmann), or a file --fit wrote"
    )
    parser.add_argument("--write", metavar="CONFIG", help="write the recommended run as a config file")
    parser.add_argument("--dataset", default="fineweb", help="the dataset a written config trains on (data/NAME)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--fit", nargs="+", metavar="OUT_DIR", help="fit a scaling law to these runs' val losses")
    parser.add_argument("--fit_out", default="fit.json", help="where --fit saves the law (default fit.json)")
    parser.add_argument("--fit_file", help="the same as --law FILE")
    parser.add_argument("--params", type=number(0), help="with --fit: the model size to predict the loss of")
    return parser.parse_known_args(negative_values_joined(argv))


def negative_values_joined(argv: list[str]) -> list[str]:
    """'--flops -1e20' as '--flops=-1e20': argparse takes '-1e20' for an option, and would say
    'expected one argument' instead of the flag's range."""
    joined, i = [], 0
    while i < len(argv):
        flag, value = argv[i], argv[i + 1] if i + 1 < len(argv) else ""
        if flag.startswith("--") and "=" not in flag and value.startswith("-") and value[1:2].isdigit():
            joined.append(f"{flag}={value}")
            i += 2
        else:
            joined.append(flag)
            i += 1
    return joined


def law_of(args: argparse.Namespace) -> scaling.Law:
    """The scaling law losses are predicted with."""
    return scaling.law_named(args.fit_file or args.law)


def dataset_facts(data_dir: str) -> tuple[int | None, dict | None]:
    """(train tokens, meta.json) of a prepared dataset folder, (None, None) where there is none."""
    shards = find_shards(data_dir, "train") if os.path.isdir(data_dir) else []
    if not shards:
        return None, None
    return sum(read_header(p) for p in shards if p.endswith(".bin")), read_meta(data_dir)


OPTIMIZER_NAMES = {"adamw": "AdamW", "muon": "Muon+AdamW"}


def mfu_text(plan: planner.RunPlan) -> str:
    """'40% MFU (measured: ...)': the figure with its source, as every answer states it."""
    return f"{100 * plan.mfu:.0f}% MFU ({plan.mfu_source})"


def evaluate(args: argparse.Namespace, rest: list[str], device: hardware.Device) -> dict:
    if args.flops or args.hours:
        raise ConfigError("--flops and --hours choose a model; with a config or settings plan.py evaluates that run")
    settings = TrainSettings(**configurator.parse_args(rest, TrainSettings))
    unique, meta = dataset_facts(args.data or data_dir_of(dataclasses.asdict(settings)))
    unique = int(args.tokens) if args.tokens else unique
    config = GPTConfig.from_settings(settings, vocab_size=settings.vocab_size or dataset_vocab_size(meta))
    dtype = "bf16" if settings.dtype == "auto" else settings.dtype
    s, law = settings, law_of(args)
    terms = planner.Terms(device, args.gpus, args.mfu, unique, law, args.usd_per_gpu_hour)
    plan = planner.plan_run(config, s, terms, dtype)
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1))
        return plan.to_dict()
    m = plan.memory
    ckpt = (
        f"activation_checkpointing={plan.activation_checkpointing}"
        if plan.activation_checkpointing
        else "no activation checkpointing"
    )
    with_ckpt = memory.max_micro_batch(
        config, device, dataclasses.replace(memory.Step.of(settings, dtype, args.gpus), activation_checkpointing=1)
    )
    epochs = f"{plan.epochs:.2f} epochs of {unique / 1e9:.3g}B tokens" if unique else "epochs unknown (no dataset)"
    cost = f"; about ${plan.usd:,.0f} at ${args.usd_per_gpu_hour:g} per GPU-hour" if plan.usd is not None else ""
    lines = [
        f"model: {config.n_layer} layers x {config.n_embd} wide, {config.n_head} heads: {plan.params:,} parameters",
        f"GPU: {args.gpus} x {device.name} ({gib(plan.usable_memory_gib)} usable each)"
        + (", FSDP: the model state sharded over them" if plan.parallelism == "fsdp" else ""),
        f"memory at micro-batch {plan.batch_size} ({dtype}, compile={settings.compile}, {ckpt}): "
        f"peak {gib(plan.peak_memory_gib)} allocated, {gib(plan.peak_reserved_gib)} reserved: "
        f"{'fits' if plan.fits else 'DOES NOT FIT'}"
        + (f" (scaled by {device.calibration.shown_path})" if device.calibration else ""),
        f"  weights {m['weights']:.2f}, gradients {m['gradients']:.2f}, "
        f"{OPTIMIZER_NAMES[s.optimizer]} {m['optimizer']:.2f}, bf16 copies "
        f"{m['weight_copies']:.2f}, activations {m['activations']:.2f}, logits and loss {m['logits']:.2f}, "
        f"overhead {m['overhead']:.2f} GiB",
        f"largest micro-batch that fits: {plan.max_micro_batch} (with activation_checkpointing=1: {with_ckpt})",
        f"tokens: {plan.tokens_per_step:,} per step x {settings.max_iters:,} steps = {plan.total_tokens / 1e9:.3g}B; "
        f"{epochs}; {plan.tokens_per_param:.1f} tokens per parameter",
        f"compute: {plan.train_flops:.2e} FLOPs; {plan.tokens_per_s:,.0f} tokens/s at {mfu_text(plan)}: "
        f"{plan.hours:,.1f} hours ({plan.hours / 24:.1f} days){cost}",
        f"predicted loss: {plan.predicted_loss:.2f} ({law.name}; approximate)",
    ]
    print("\n".join(lines))
    return plan.to_dict()


def header(
    args: argparse.Namespace, found: planner.Search, device: hardware.Device | None, law: scaling.Law
) -> list[str]:
    """The lines above the table: what was searched, for what, and on which assumptions."""
    best, budget = found.best, found.budget
    data = f"{human_count(best.unique_tokens)} unique tokens" if best.unique_tokens else "fresh data, not limited"
    if found.data_only:
        spend = f"the {budget.flops:.3g} FLOPs one epoch of your tokens supports (no --flops or --hours given)"
    else:
        spend = " and ".join(
            ([f"{budget.flops:.3g} FLOPs"] if budget.flops else []) + ([f"{budget.hours:g} h"] if budget.hours else [])
        )
    on = (
        f"{args.gpus} x {device.name} ({gib(best.usable_memory_gib)} usable each)"
        if device
        else "no GPU named (--gpu adds memory, micro-batch and hours)"
    )
    lines = [f"budget: {spend}; {data}; {args.arch} blocks", f"GPU: {on}"]
    if device:
        lines.append(f"MFU: {100 * best.mfu:.0f}% ({best.mfu_source})")
    lines.append(f"losses: {law.name}, repeats discounted as Muennighoff et al. 2023 found: a ranking, not a forecast")
    return lines


def table(
    rows: list[planner.RunPlan], best: planner.RunPlan, device: hardware.Device | None, gpus: int, cost: bool
) -> list[str]:
    """The options around the best, one line each (micro-batch x accumulation on each GPU), with
    the constraint that binds it."""
    titles = f"{'params':>8} {'shape':>14} "
    titles += f"{'micro x accum':>15} {'GiB rsvd':>8} " if device else f"{'tokens/step':>11} "
    titles += f"{'tokens':>7} {'epochs':>6} {'tok/param':>9} {'FLOPs':>8} "
    titles += f"{'hours':>8} " if device else ""
    titles += f"{'USD':>9} " if cost else ""
    lines = [titles + f"{'loss':>5} {'binds':>7}"]
    for c in rows:
        line = f"{c.params / 1e6:7,.0f}M {f'{c.n_layer}L/{c.n_embd}/{c.n_head}h':>14} "
        if device:
            micro = f"{c.batch_size} x {c.gradient_accumulation_steps // gpus}"
            micro += "+ckpt" * bool(c.activation_checkpointing) + "+fsdp" * (c.parallelism == "fsdp")
            micro = micro if c.fits else "does not fit"
            line += f"{micro:>15} {c.peak_reserved_gib:8.1f} "
        else:
            line += f"{human_count(c.tokens_per_step):>11} "
        epochs = f"{c.epochs:.2f}" if c.epochs else "-"
        line += f"{human_count(c.total_tokens):>7} {epochs:>6} {c.tokens_per_param:9.1f} {c.train_flops:8.2g} "
        line += f"{c.hours:8,.1f} " if device else ""
        line += f"{c.usd:9,.0f} " if cost else ""
        line += f"{c.predicted_loss:5.2f} {c.binding:>7}"
        line += " <" if c is best else ""
        line += f" {c.name}" if c.name else ""
        lines.append(line)
    return lines


def search(args: argparse.Namespace, device: hardware.Device | None) -> dict:
    unique, meta = dataset_facts(args.data) if args.data else (None, None)
    unique = int(args.tokens) if args.tokens else unique
    if args.data and not unique:
        raise ConfigError(f"--data {args.data}: no train shards there; prepare it first or give --tokens")
    if args.write and not unique:
        raise ConfigError("--write needs --tokens or --data: the config it writes is sized to your data")
    if args.write and not device:
        raise ConfigError(
            "--write needs --gpu (or --vram_gb and --peak_tflops): the micro-batch is sized to its memory"
        )
    law = law_of(args)
    found = planner.search(
        arch=args.arch,
        vocab_size=dataset_vocab_size(meta),
        budget=planner.Budget(flops=args.flops, hours=args.hours),
        terms=planner.Terms(device, args.gpus, args.mfu, unique, law, args.usd_per_gpu_hour),
    )
    best, why = found.best, planner.explain(found, args.gpus)
    rows = planner.shown(found)
    if args.write:
        write_config(args, best, device, unique, why, law)
    result = {
        **best.to_dict(),
        "candidates": [c.to_dict() for c in rows],
        "recommendation": why,
        "law": law.name,
        "budget": dataclasses.asdict(found.budget),
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    print(
        "\n".join(header(args, found, device, law) + table(rows, best, device, args.gpus, bool(args.usd_per_gpu_hour)))
    )
    layout = f"{best.tokens_per_step:,} tokens per step"
    if device:
        each = f" on each of {args.gpus} GPUs" if args.gpus > 1 else ""
        layout = (
            f"micro-batch {best.batch_size} x {best.gradient_accumulation_steps // args.gpus} accumulation{each} "
            f"({layout})"
        )
    print(
        f"recommended: {best.n_layer} layers x {best.n_embd} wide, {best.n_head} heads ({best.params:,} parameters) "
        f"on {human_count(best.total_tokens)} tokens, {layout}: {why}."
        + (f" Written to {args.write}." if args.write else "")
    )
    return result


def device_args(args: argparse.Namespace) -> str:
    """The plan.py options that name the device(s), to check a written config with."""
    named = f"--gpu {args.gpu}" if args.gpu else f"--vram_gb {args.vram_gb:g} --peak_tflops {args.peak_tflops:g}"
    return named + (f" --gpus {args.gpus}" if args.gpus > 1 else "")


def write_config(
    args: argparse.Namespace, plan: planner.RunPlan, device: hardware.Device, unique: int, why: str, law: scaling.Law
) -> None:
    """The recommended run as a config file train.py reads."""
    iters = plan.total_tokens // plan.tokens_per_step
    lr = scaling.learning_rate_for(plan.params)
    warmup = min(int(scaling.WARMUP_TOKENS // plan.tokens_per_step), iters // 10)
    arch = {k: v for k, v in planner.ARCHS[args.arch].items() if k != "bias"}
    lines = [
        f"# Written by plan.py on {datetime.date.today()}: {args.command}",
        f"# Target: {args.gpus} x {device.name}, {unique / 1e9:.3g}B tokens of data"
        + (f", {args.hours:g} hours" if args.hours else "")
        + (f", {args.flops:.3g} FLOPs" if args.flops else ""),
        f"# Model: {plan.params:,} parameters ({plan.n_layer} layers x {plan.n_embd} wide, {plan.n_head} heads)",
        f"# Predicted peak memory {plan.peak_memory_gib:.1f} GiB ({plan.peak_reserved_gib:.1f} GiB reserved) per GPU "
        f"of {plan.usable_memory_gib:.1f} GiB usable "
        f"(micro-batch {plan.batch_size}, bf16, compile): python plan.py {args.write} {device_args(args)} "
        f"--tokens {unique:g}",
        f"# {plan.total_tokens / 1e9:.3g}B tokens ({plan.epochs:.2f} epochs, {plan.tokens_per_param:.1f} per "
        f"parameter), {plan.train_flops:.2e} FLOPs: about {plan.hours:,.1f} h at {mfu_text(plan)}",
        f"# Predicted loss {plan.predicted_loss:.2f} ({law.name}, approximate). Why this model: {why}",
        f"out_dir = {json.dumps('out-' + os.path.splitext(os.path.basename(args.write))[0].replace('_', '-'))}",
        f"dataset = {json.dumps(args.dataset)}"
        if not args.data
        else f"data_dir = {json.dumps(os.path.abspath(args.data))}",
        f"n_layer = {plan.n_layer}",
        f"n_embd = {plan.n_embd}",
        f"n_head = {plan.n_head}",
        *[f"{k} = {json.dumps(v)}" for k, v in arch.items()],
        "bias = False",
        "dropout = 0.0",
        "block_size = 1024",
        f"batch_size = {plan.batch_size}",
        f"gradient_accumulation_steps = {plan.gradient_accumulation_steps}  # {plan.tokens_per_step:,} tokens per step",
        f"activation_checkpointing = {plan.activation_checkpointing}",
        f'parallelism = "{plan.parallelism}"  # under torchrun',
        f"learning_rate = {lr:.2g}  # GPT-3's for this size",
        f"min_lr = {lr / 10:.2g}",
        f"warmup_iters = {warmup}",
        f"max_iters = {iters}",
        f"lr_decay_iters = {iters}",
        "weight_decay = 0.1",
        "beta2 = 0.95",
        "grad_clip = 1.0",
        "compile = True",
        "eval_interval = 1000",
        "eval_iters = 50",
        "log_interval = 10",
    ]
    with open(args.write, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def fit_runs(args: argparse.Namespace) -> dict:
    """Fit the law to the runs, print it and what it predicts, and save it for --law."""
    points, source = scaling.run_points(args.fit)
    fit, warnings = scaling.fit(points, source)
    fit.save(args.fit_out)
    if args.json:
        print(json.dumps(dataclasses.asdict(fit), indent=1))
        return dataclasses.asdict(fit)
    sizes, tokens = fit.sizes, fit.tokens
    lines = [
        f"L(N, D) = E + A / N^alpha + B / D^beta fitted to {fit.points} val losses of {len(args.fit)} runs "
        f"({len(sizes)} sizes, {human_count(sizes[0])} to {human_count(sizes[-1])} parameters; "
        f"{human_count(tokens[0])} to {human_count(tokens[1])} tokens):",
        "  " + "   ".join(f"{name} = {getattr(fit, name):.4g} ± {fit.sd[name]:.2g}" for name in scaling.NAMES),
        f"  rms error {fit.rms_log_error:.4f} in log loss",
    ]
    params, tokens_at = args.params or 2 * sizes[-1], args.tokens or tokens[1]
    n_opt, d_opt = fit.compute_optimal(6 * params * tokens_at)
    lines += [
        f"predicted loss of {human_count(params)} parameters trained on {human_count(tokens_at)} tokens: "
        f"{fit.loss(params, tokens_at):.4f}",
        f"compute-optimal at that compute (6ND = {6 * params * tokens_at:.3g} FLOPs): {human_count(n_opt)} parameters "
        f"on {human_count(d_opt)} tokens, {d_opt / n_opt:.1f} tokens per parameter on this data",
        *(f"warning: {w}" for w in warnings),
        f"saved {args.fit_out}; plan with it: python plan.py --law {args.fit_out} ...",
    ]
    print("\n".join(lines))
    return dataclasses.asdict(fit)


def main(argv: list[str]) -> dict:
    args, rest = arguments(argv)
    if args.fit:
        return fit_runs(args)
    args.command = " ".join(["python plan.py", *argv])
    has_run = bool(rest)  # a config file or --key=value settings: evaluate that run
    if args.flops and not (args.gpu or args.vram_gb or args.hours) and not has_run:
        device = None  # a FLOPs budget alone needs no GPU
    else:
        gpu = args.gpu or (None if args.vram_gb else "h100")
        device = hardware.device_for(gpu, args.vram_gb, args.peak_tflops, args.calibration)
    if (args.tokens or args.data or args.hours or args.flops) and not has_run:
        return search(args, device)
    return evaluate(args, rest, device)


if __name__ == "__main__":
    exit_on_error(main)
