"""
Size a run before you start it, without a GPU: memory, tokens, FLOPs and hours.

Evaluate a run (train.py's defaults where no config is given; any train.py setting can be set):
    python plan.py config/fineweb_3b_mi300x.py --gpu mi300x
    python plan.py --n_layer=24 --n_embd=1024 --n_head=16 --batch_size=8 --gpu rtx4090 --json
Choose a model for a GPU and your tokens (or --data DIR to count a dataset's):
    python plan.py --gpu mi300x --tokens 14.6e9 --hours 72 --write config/fineweb_mi300x_72h.py
    python plan.py --gpu rtx4090 --tokens 10e9 --arch llama
Or for a time budget alone, with as much fresh data as the time can use:
    python plan.py --gpu mi300x --hours 72
Fit a scaling law to your own runs (several sizes), then plan with it instead of Chinchilla's:
    python plan.py --fit out-sweep/* --params 3e6 --tokens 2e6     # writes fit.json
    python plan.py --fit-file fit.json --gpu rtx4090 --tokens 1e9

Memory is the predicted peak of a training step (torch.cuda.max_memory_allocated, from
fitgpt/accounting.py: within 3 % of the GPU peaks it was fitted to); "fits" leaves 1 GiB for
the CUDA context and 10 % for the model's error and fragmentation. Time assumes an MFU (default 40 %, --mfu) of the
GPU's dense bf16 peak. Losses come from the Chinchilla fit (Hoffmann et al. 2022, approach 3),
with repeated tokens discounted as Muennighoff et al. 2023 measured: approximate, not forecasts.
"""

import argparse
import dataclasses
import datetime
import json
import os

import configurator
from fitgpt import planner, scaling
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError, exit_on_error
from fitgpt.runs import human_count
from fitgpt.settings import TrainSettings
from fitgpt.shards import data_dir_of, find_shards, read_header, read_meta
from fitgpt.tokenization import dataset_vocab_size


def arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False
    )
    parser.add_argument("--gpu", help="h100, h100-pcie, h200, a100-40, a100-80, mi300x, rtx4090, ... (default h100)")
    parser.add_argument("--vram-gb", type=float, help="a GPU not in the table: its memory")
    parser.add_argument("--peak-tflops", type=float, help="... and its dense bf16 peak")
    parser.add_argument("--gpus", type=int, default=1, help="GPUs training together (DDP)")
    parser.add_argument("--mfu", type=float, default=planner.DEFAULT_MFU, help="assumed model FLOPs utilisation")
    parser.add_argument("--tokens", type=float, help="tokens of training data you have: choose a model for them")
    parser.add_argument("--data", help="a prepared dataset folder: count its train tokens (and read its vocabulary)")
    parser.add_argument("--hours", type=float, help="time budget: the lowest predicted loss within it")
    parser.add_argument("--arch", choices=sorted(planner.ARCHS), default="gpt2", help="block type for the search")
    parser.add_argument("--write", metavar="CONFIG", help="write the recommended run as a config file")
    parser.add_argument("--dataset", default="fineweb", help="the dataset a written config trains on (data/NAME)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--fit", nargs="+", metavar="OUT_DIR", help="fit a scaling law to these runs' val losses")
    parser.add_argument("--fit-out", default="fit.json", help="where --fit saves the law (default fit.json)")
    parser.add_argument("--fit-file", help="predict losses with this fitted law instead of Chinchilla's")
    parser.add_argument("--params", type=float, help="with --fit: the model size to predict the loss of")
    return parser.parse_known_args(argv)


def law_of(args: argparse.Namespace) -> tuple[dict, str]:
    """The scaling law losses are predicted with, and how to name it."""
    if not args.fit_file:
        return planner.CHINCHILLA, "Chinchilla fit: approximate"
    fit = scaling.Fit.load(args.fit_file)
    return fit.law(), f"the law in {args.fit_file}, fitted to {len(fit.source.get('runs', []))} runs"


def dataset_facts(data_dir: str) -> tuple[int | None, dict | None]:
    """(train tokens, meta.json) of a prepared dataset folder, (None, None) where there is none."""
    shards = find_shards(data_dir, "train") if os.path.isdir(data_dir) else []
    if not shards:
        return None, None
    return sum(read_header(p) for p in shards if p.endswith(".bin")), read_meta(data_dir)


OPTIMIZER_NAMES = {"adamw": "AdamW", "muon": "Muon+AdamW"}


def gib(x: float) -> str:
    return f"{x:,.1f} GiB"


def evaluate(args: argparse.Namespace, rest: list[str], device: planner.Device) -> dict:
    settings = TrainSettings(**configurator.parse_args(rest, TrainSettings))
    unique, meta = dataset_facts(args.data or data_dir_of(dataclasses.asdict(settings)))
    unique = int(args.tokens) if args.tokens else unique
    config = GPTConfig.from_settings(settings, vocab_size=settings.vocab_size or dataset_vocab_size(meta))
    dtype = "bf16" if settings.dtype == "auto" else settings.dtype
    s = settings
    plan = planner.plan_run(
        config,
        device,
        s.batch_size,
        s.gradient_accumulation_steps,
        s.max_iters,
        dtype,
        s.compile,
        args.gpus,
        args.mfu,
        unique,
        s.parallelism,
        law=law_of(args)[0],
        optimizer=s.optimizer,
    )
    if args.json:
        print(json.dumps(plan.to_dict(), indent=1))
        return plan.to_dict()
    m = plan.memory
    ckpt = (
        f"activation_checkpointing={plan.activation_checkpointing}"
        if plan.activation_checkpointing
        else "no activation checkpointing"
    )
    with_ckpt = planner.max_micro_batch(
        dataclasses.replace(config, activation_checkpointing=1),
        device,
        dtype,
        settings.compile,
        1,
        max(1, settings.gradient_accumulation_steps // args.gpus),
        optimizer=settings.optimizer,
    )
    epochs = f"{plan.epochs:.2f} epochs of {unique / 1e9:.3g}B tokens" if unique else "epochs unknown (no dataset)"
    lines = [
        f"model: {config.n_layer} layers x {config.n_embd} wide, {config.n_head} heads: {plan.params:,} parameters",
        f"GPU: {args.gpus} x {device.name} ({gib(plan.usable_memory_gib)} usable each)"
        + (", FSDP: the model state sharded over them" if plan.parallelism == "fsdp" else ""),
        f"memory at micro-batch {plan.batch_size} ({dtype}, compile={settings.compile}, {ckpt}): "
        f"peak {gib(plan.peak_memory_gib)}: {'fits' if plan.fits else 'DOES NOT FIT'}",
        f"  weights {m['weights']:.2f}, gradients {m['gradients']:.2f}, "
        f"{OPTIMIZER_NAMES[s.optimizer]} {m['optimizer']:.2f}, bf16 copies "
        f"{m['weight_copies']:.2f}, activations {m['activations']:.2f}, logits and loss {m['logits']:.2f}, "
        f"overhead {m['overhead']:.2f} GiB",
        f"largest micro-batch that fits: {plan.max_micro_batch} (with activation_checkpointing=1: {with_ckpt})",
        f"tokens: {plan.tokens_per_step:,} per step x {settings.max_iters:,} steps = {plan.total_tokens / 1e9:.3g}B; "
        f"{epochs}; {plan.tokens_per_param:.1f} tokens per parameter",
        f"compute: {plan.train_flops:.2e} FLOPs; at {100 * args.mfu:.0f}% MFU {plan.tokens_per_s:,.0f} tokens/s: "
        f"{plan.hours:,.1f} hours ({plan.hours / 24:.1f} days)",
        f"predicted loss: {plan.predicted_loss:.2f} ({law_of(args)[1]})",
    ]
    print("\n".join(lines))
    return plan.to_dict()


def search(args: argparse.Namespace, device: planner.Device) -> dict:
    unique, meta = dataset_facts(args.data) if args.data else (None, None)
    unique = int(args.tokens) if args.tokens else unique
    if args.data and not unique:
        raise ConfigError(f"--data {args.data}: no train shards there; prepare it first or give --tokens")
    if args.write and not unique:
        raise ConfigError("--write needs --tokens or --data: the config it writes is sized to your data")
    vocab = dataset_vocab_size(meta)
    law = law_of(args)[0]
    candidates = [
        c
        for shape in planner.SHAPES
        if (c := planner.candidate(shape, args.arch, vocab, device, unique, args.hours, args.gpus, args.mfu, law=law))
    ]
    best, why = planner.recommend(candidates, unique, args.hours)
    if args.write:
        write_config(args, best, device, unique, why)
    result = {**best.to_dict(), "candidates": [c.to_dict() for c in candidates], "recommendation": why}
    if args.json:
        print(json.dumps(result, indent=1))
        return result
    print(
        f"{args.gpus} x {device.name}; {f'{unique / 1e9:.3g}B tokens' if unique else 'data not limited'}; "
        f"{args.arch} blocks; "
        f"{f'{args.hours:g} h; ' if args.hours else ''}MFU {100 * args.mfu:.0f}% assumed"
    )
    print(
        f"{'params':>8} {'shape':>13} {'micro x accum':>13} {'peak GiB':>8} {'tokens':>8} {'epochs':>6} "
        f"{'tok/param':>9} {'hours':>8} {'loss':>5}"
    )
    for c in candidates:
        mark = " <" if c is best else ""
        micro = f"{c.batch_size}x{c.gradient_accumulation_steps}" + ("+ckpt" if c.activation_checkpointing else "")
        micro += "+fsdp" if c.parallelism == "fsdp" else ""
        epochs = f"{c.epochs:.2f}" if c.epochs else "-"
        print(
            f"{c.params / 1e6:7,.0f}M {f'{c.n_layer}L/{c.n_embd}/{c.n_head}h':>13} {micro:>13} "
            f"{c.peak_memory_gib:8.1f} {c.total_tokens / 1e9:7.1f}B {epochs:>6} {c.tokens_per_param:9.1f} "
            f"{c.hours:8.1f} {c.predicted_loss:5.2f}{mark}"
        )
    print(
        f"recommended: {best.n_layer} layers x {best.n_embd} wide, {best.n_head} heads ({best.params:,} "
        f"parameters), micro-batch {best.batch_size} x {best.gradient_accumulation_steps} accumulation: {why}."
        + (f" Written to {args.write}." if args.write else "")
    )
    return result


def device_args(args: argparse.Namespace) -> str:
    """The plan.py options that name the device(s), to check a written config with."""
    named = f"--gpu {args.gpu}" if args.gpu else f"--vram-gb {args.vram_gb:g} --peak-tflops {args.peak_tflops:g}"
    return named + (f" --gpus {args.gpus}" if args.gpus > 1 else "")


def write_config(
    args: argparse.Namespace, plan: planner.RunPlan, device: planner.Device, unique: int, why: str
) -> None:
    """The recommended run as a config file train.py reads."""
    iters = plan.total_tokens // plan.tokens_per_step
    lr = planner.learning_rate_for(plan.params)
    warmup = min(int(planner.WARMUP_TOKENS // plan.tokens_per_step), iters // 10)
    arch = {k: v for k, v in planner.ARCHS[args.arch].items() if k != "bias"}
    lines = [
        f"# Written by plan.py on {datetime.date.today()}: {args.command}",
        f"# Target: {args.gpus} x {device.name}, {unique / 1e9:.3g}B tokens of data"
        + (f", {args.hours:g} hours" if args.hours else ""),
        f"# Model: {plan.params:,} parameters ({plan.n_layer} layers x {plan.n_embd} wide, {plan.n_head} heads)",
        f"# Predicted peak memory {plan.peak_memory_gib:.1f} GiB per GPU of {plan.usable_memory_gib:.1f} usable "
        f"(micro-batch {plan.batch_size}, bf16, compile): python plan.py {args.write} {device_args(args)} "
        f"--tokens {unique:g}",
        f"# {plan.total_tokens / 1e9:.3g}B tokens ({plan.epochs:.2f} epochs, {plan.tokens_per_param:.1f} per "
        f"parameter), {plan.train_flops:.2e} FLOPs: about {plan.hours:,.1f} h at {100 * plan.mfu:.0f}% MFU",
        f"# Predicted loss {plan.predicted_loss:.2f} (Chinchilla fit, approximate). Why this model: {why}",
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
    """Fit the law to the runs, print it and what it predicts, and save it for --fit-file."""
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
        f"saved {args.fit_out}; plan with it: python plan.py --fit-file {args.fit_out} ...",
    ]
    print("\n".join(lines))
    return dataclasses.asdict(fit)


def main(argv: list[str]) -> dict:
    args, rest = arguments(argv)
    if args.fit:
        return fit_runs(args)
    args.command = " ".join(["python plan.py", *argv])
    device = planner.device_for(args.gpu or (None if args.vram_gb else "h100"), args.vram_gb, args.peak_tflops)
    if args.gpus < 1 or not 0 < args.mfu <= 1:
        raise ConfigError("--gpus must be at least 1 and --mfu in (0, 1]")
    has_config = any(not a.startswith("--") for a in rest)
    if (args.tokens or args.data or args.hours) and not has_config and not rest:
        return search(args, device)
    return evaluate(args, rest, device)


if __name__ == "__main__":
    exit_on_error(main)
