"""
Loss per token on tiny shakespeare: (a) config/shakespeare_char.py as it is, (b) its shape with
the small-scale recipe and AdamW (config/shakespeare_char_fast.py with optimizer='adamw'), (c) the
same with Muon (the config as it is), and (B): (b) with every CANDIDATES option on as well, the
strongest AdamW form measured (options that do not help Muon may help AdamW). For each, over
seeds 1-3 (the seed fixes both the initial weights and the data order, so every config sees the
same batches): the iterations, tokens and training time each needs to first reach (a)'s mean val
loss at its last iteration, its best val loss and bits per byte, and its seconds per iteration.
(b) and (c) get the same learning-rate sweep on seed 1 (AdamW's learning_rate for (b), muon_lr for
(c)); seeds 2 and 3 run at the best, and (B) at (b)'s.
Each run is train.py in a subprocess with OMP_NUM_THREADS=1; finished runs are kept and reused.

    python benchmarks/recipe_bench.py --out /tmp/recipe-char --jobs 2
    python benchmarks/recipe_bench.py --out /tmp/recipe-gpt2 --dataset shakespeare_gpt2 --iters 150 \\
        --warmup_iters 20 --eval_interval 25 --eval_iters 5 --adamw_lrs 1e-3 --muon_lrs 0.01 --jobs 2
        # GPT-2 tokens, no sweep: (b) and (c) at the lrs the character-level sweep chose
    python benchmarks/recipe_bench.py --out /tmp/recipe-char --adamw_lrs 1e-3 --muon_lrs 0.01 --ablate --jobs 2
        # and (c) with every CANDIDATES option on, then each undone in turn: what each wins on its own
GPT-2 tokens of the same text, with the same val text as shakespeare_char's (its last 10%):
see docs/benchmarks.md. With GPT-2's vocabulary the head is tied in (b), (B) and (c), as in (a): an
untied one would double the parameters.
"""

import json
import os
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, REPO)
import configurator
from fitgpt.errors import exit_on_error
from fitgpt.runfiles import read_records

SEEDS = (1, 2, 3)
# the candidate recipe options --ablate measures: name -> (the train.py argument that turns it on,
# the one that undoes it). Each is undone in turn from (c) with all of them on.
CANDIDATES = {
    "relu2": ("--mlp=relu2", "--mlp=gelu"),
    "zero_init": ("--zero_init_proj=True", "--zero_init_proj=False"),
    "softcap": ("--logit_softcap=15.0", "--logit_softcap=0"),
    "untied": ("--tie_embeddings=False", "--tie_embeddings=True"),
}


def arguments(argv):
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--out", required=True, help="folder for the runs (reused: finished runs are not rerun)")
    parser.add_argument("--dataset", default="shakespeare_char")
    parser.add_argument("--iters", type=int, default=2000, help="max_iters (and lr_decay_iters) of every run")
    parser.add_argument("--eval_interval", type=int, default=50)
    parser.add_argument("--eval_iters", type=int, default=20)
    parser.add_argument("--warmup_iters", type=int, help="warmup_iters of every run (default: the configs' 100)")
    parser.add_argument("--adamw_lrs", type=float, nargs="+", default=[1e-3, 2e-3, 4e-3], help="(b)'s sweep")
    parser.add_argument("--muon_lrs", type=float, nargs="+", default=[0.01, 0.02, 0.04], help="(c)'s sweep")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--ablate", action="store_true", help="also run (c) with CANDIDATES on, each undone in turn")
    return parser.parse_args(argv)


def common(args) -> list[str]:
    extra = [f"--dataset={args.dataset}"]
    if args.dataset != "shakespeare_char":  # GPT-2 tokens: pad the vocabulary as usual
        extra += ["--vocab_multiple=64"]
    if args.warmup_iters is not None:
        extra += [f"--warmup_iters={args.warmup_iters}"]
    return extra + [
        f"--max_iters={args.iters}",
        f"--lr_decay_iters={args.iters}",
        f"--eval_interval={args.eval_interval}",
        f"--eval_iters={args.eval_iters}",
        f"--log_interval={args.eval_interval}",
        "--always_save_checkpoint=False",
    ]


def run_specs(args, adamw_lrs, muon_lrs, seeds) -> dict[str, list[str]]:
    """Run name -> train.py arguments."""
    recipe = ["config/shakespeare_char_fast.py"]
    if args.dataset != "shakespeare_char":
        recipe.append("--tie_embeddings=True")
    specs = {f"a-seed{seed}": ["config/shakespeare_char.py", f"--seed={seed}"] for seed in SEEDS}
    for seed in seeds:
        for lr in adamw_lrs:
            specs[f"b-lr{lr:g}-seed{seed}"] = recipe + ["--optimizer=adamw", f"--learning_rate={lr}", f"--seed={seed}"]
        for lr in muon_lrs:
            specs[f"c-lr{lr:g}-seed{seed}"] = recipe + ["--optimizer=muon", f"--muon_lr={lr}", f"--seed={seed}"]
    return specs


def finished(out_dir: str, iters: int) -> bool:
    path = os.path.join(out_dir, "metrics.jsonl")
    return os.path.exists(path) and any(r.get("iter") == iters and "val_loss" in r for r in read_records(path))


def run_all(args, specs: dict[str, list[str]]) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}

    def one(name):
        out_dir = os.path.join(args.out, name)
        if finished(out_dir, args.iters):
            return
        command = [sys.executable, "train.py", *specs[name], *common(args), f"--out_dir={out_dir}"]
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "stdout.txt"), "w") as log:
            print(" ".join(command[1:]), file=log, flush=True)
            subprocess.run(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        print(f"done {name}", flush=True)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(one, specs))


def summarize(out_dir: str) -> dict:
    rows = read_records(os.path.join(out_dir, "metrics.jsonl"))
    evals = [r for r in rows if "val_loss" in r]
    steps = sorted(r["ms"] for r in rows if "ms" in r)
    return {
        "evals": [(r["iter"], r["tokens"], r["val_loss"]) for r in evals],
        "final": evals[-1]["val_loss"],
        "best": min(r["val_loss"] for r in evals),
        "best_bpb": min(r["val_bpb"] for r in evals) if "val_bpb" in evals[-1] else None,
        "s_per_iter": statistics.median(steps) / 1000,  # the median lap: robust to a busy neighbour
    }


def reach(run: dict, target: float) -> tuple[int, int] | None:
    """(iterations, tokens) of the first evaluation at or below target."""
    return next(((it, tok) for it, tok, loss in run["evals"] if loss <= target), None)


def mean_sd(values: list[float], digits: int = 4) -> str:
    if not values:
        return "-"
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.{digits}f} ± {sd:.{digits}f}"


def table(args, groups: dict[str, list[dict]]) -> tuple[str, dict]:
    target = statistics.mean(r["final"] for r in groups["a"])
    lines = [
        f"target: (a)'s mean val loss at iteration {args.iters}: {target:.4f}",
        "",
        "| config | iterations to target | tokens to target | time to target (s) | best val loss | best bpb | s/iter |",
        "|---|---|---|---|---|---|---|",
    ]
    facts = {"target": target}
    for name, runs in groups.items():
        reached = [(reach(r, target), r["s_per_iter"]) for r in runs]
        its = [hit[0] for hit, _ in reached if hit]
        toks = [hit[1] for hit, _ in reached if hit]
        times = [hit[0] * s for hit, s in reached if hit]
        note = "" if len(its) == len(runs) else f" ({len(its)}/{len(runs)} seeds reach it)"
        bpbs = [r["best_bpb"] for r in runs if r["best_bpb"] is not None]
        spi = [r["s_per_iter"] for r in runs]
        lines.append(
            f"| ({name}) | {mean_sd(its, 0)}{note} | {mean_sd(toks, 0)} | {mean_sd(times, 1)} | "
            f"{mean_sd([r['best'] for r in runs])} | {mean_sd(bpbs)} | {mean_sd(spi, 4)} |"
        )
        facts[name] = {"iters": its, "tokens": toks, "s_per_iter": spi, "reached": len(its), "runs": len(runs)}
    if all(facts[k]["iters"] for k in "bBc"):
        m = {k: statistics.mean(facts[k]["tokens"]) for k in "bBc"}
        m["a"] = groups["a"][0]["evals"][-1][1]  # (a) reaches its own mean at its last iteration, by definition
        t = {k: statistics.mean(facts[k]["s_per_iter"]) for k in "bBc"}
        lines += [
            "",
            f"(c)/(a) tokens to target (a: {m['a']:,}, its last iteration): {m['c'] / m['a']:.2f} (target <= 0.5); "
            f"(c)/(b): {m['c'] / m['b']:.2f}, (c)/(B): {m['c'] / m['B']:.2f} (target <= 0.8); "
            f"(c)/(b) s/iter: {t['c'] / t['b']:.2f}, (c)/(B): {t['c'] / t['B']:.2f} (target <= 1.15)",
        ]
    return "\n".join(lines), facts


def candidates(args) -> dict[str, tuple[str, str]]:
    """CANDIDATES, less the untied head on GPT-2 tokens (there it would double the parameters)."""
    return {k: v for k, v in CANDIDATES.items() if args.dataset == "shakespeare_char" or k != "untied"}


def every_candidate(args) -> list[str]:
    """The train.py arguments that turn every candidate on."""
    return [on for on, _ in candidates(args).values()]


def ablation(args, muon_lr: float, target: float) -> str:
    """(c) with every candidate on ('all'), and with each undone in turn, on every seed: each one's
    best val loss and that loss minus 'all''s on the same seed (positive: the option helps)."""
    recipe = run_specs(args, [], [muon_lr], SEEDS)
    every = every_candidate(args)
    specs = {f"all-seed{seed}": recipe[f"c-lr{muon_lr:g}-seed{seed}"] + every for seed in SEEDS}
    for option, (_, undo) in candidates(args).items():
        specs |= {f"d-{option}-seed{seed}": specs[f"all-seed{seed}"] + [undo] for seed in SEEDS}
    run_all(args, specs)
    full = [summarize(os.path.join(args.out, f"all-seed{seed}")) for seed in SEEDS]
    lines = [
        "",
        f"(c) with every candidate on ({' '.join(every)}), then each undone, seeds 1-3, paired by seed:",
        "",
        "| undone | iterations to target | best val loss | minus all's, paired | per seed | best bpb |",
        "|---|---|---|---|---|---|",
    ]
    for option, (_, undo) in {"none": (None, "(all on)"), **candidates(args)}.items():
        name = "all" if option == "none" else f"d-{option}"
        runs = [summarize(os.path.join(args.out, f"{name}-seed{seed}")) for seed in SEEDS]
        its = [hit[0] for hit in (reach(r, target) for r in runs) if hit]
        note = "" if len(its) == len(runs) else f" ({len(its)}/{len(runs)} seeds reach it)"
        deltas = [r["best"] - f["best"] for r, f in zip(runs, full)]
        bpbs = [r["best_bpb"] for r in runs if r["best_bpb"] is not None]
        lines.append(
            f"| `{undo}` | {mean_sd(its, 0)}{note} | {mean_sd([r['best'] for r in runs])} | "
            f"{mean_sd(deltas)} | {', '.join(f'{d:+.4f}' for d in deltas)} | {mean_sd(bpbs)} |"
        )
    return "\n".join(lines)


def main(argv=None):
    args = arguments(argv)
    os.makedirs(args.out, exist_ok=True)
    sweep = len(args.adamw_lrs) > 1 or len(args.muon_lrs) > 1
    run_all(args, run_specs(args, args.adamw_lrs, args.muon_lrs, SEEDS[:1] if sweep else SEEDS))
    done = {
        name: summarize(os.path.join(args.out, name))
        for name in run_specs(args, args.adamw_lrs, args.muon_lrs, SEEDS[:1])
    }
    report = []
    best_lr = {}
    for kind, lrs in (("b", args.adamw_lrs), ("c", args.muon_lrs)):
        results = {lr: done[f"{kind}-lr{lr:g}-seed1"]["best"] for lr in lrs}
        best_lr[kind] = min(results, key=results.get)
        if sweep:
            listed = ", ".join(f"{lr:g}: {loss:.4f}" for lr, loss in results.items())
            report.append(f"({kind}) sweep, seed 1, best val loss by lr: {listed}; chosen {best_lr[kind]:g}")
    finals = run_specs(args, [best_lr["b"]], [best_lr["c"]], SEEDS)
    # (B): (b) with every candidate on as well: options that do not help Muon may still help AdamW
    every = every_candidate(args)
    finals |= {f"B-seed{seed}": finals[f"b-lr{best_lr['b']:g}-seed{seed}"] + every for seed in SEEDS}
    run_all(args, finals)
    groups = {"a": [], "b": [], "B": [], "c": []}
    for name in finals:
        groups[name[0]].append(summarize(os.path.join(args.out, name)))
    text, facts = table(args, groups)
    report.append(text)
    if args.ablate:
        report.append(ablation(args, best_lr["c"], facts["target"]))
    print("\n".join(report))
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump({"best_lr": best_lr, **facts}, f, indent=1)


if __name__ == "__main__":
    exit_on_error(main)
