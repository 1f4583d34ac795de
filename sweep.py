"""
Train a grid of runs one after another, then print each one's best val loss and the winner:
    python sweep.py config/shakespeare_char.py --learning_rate=3e-4,1e-3,3e-3 --n_embd=64,128
    python sweep.py config/tinystories_15m.py --learning_rate=5e-4,1e-3 --max_iters=2000   # one value: every run
    python sweep.py config/train_gpt2.py --learning_rate=6e-4,1.2e-3 --print --nproc_per_node=8   # torchrun commands
A setting given several values (comma-separated) is swept; the grid is every combination. Each run
is train.py in a process of its own, with its own out_dir, <sweep_dir>/<its values> (sweep_dir:
the config's out_dir + '-sweep' unless given), so the same command finds the same folders again:
finished runs are skipped and an interrupted one resumes from its checkpoint. Compare them with
    python plot.py out-shakespeare-char-sweep/*
"""

import argparse
import os
import shlex
import signal
import subprocess
import sys

import configurator
from fitgpt import sweeps
from fitgpt.errors import exit_on_error
from fitgpt.runs import Run, table
from fitgpt.settings import TrainSettings
from fitgpt.shards import REPO


def arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--sweep_dir", default="", help="where the runs' folders go (default: out_dir + '-sweep')")
    parser.add_argument("--print", action="store_true", help="print the commands that would run each run, run none")
    parser.add_argument("--nproc_per_node", type=int, default=1, help="with --print: torchrun processes per run")
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> list[dict]:
    args, rest = arguments(argv)
    configs, grid, fixed = sweeps.split_arguments(rest)
    base, _ = configurator.parse(configs + fixed, TrainSettings)
    sweep_dir = args.sweep_dir or base.out_dir.rstrip("/") + "-sweep"
    runs = []
    for values in sweeps.combinations(grid):
        out_dir = os.path.join(sweep_dir, sweeps.run_name(values))
        run_argv = [*configs, *fixed, *(f"--{key}={value}" for key, value in values.items()), f"--out_dir={out_dir}"]
        settings, _ = configurator.parse(run_argv, TrainSettings)  # checks every value
        runs.append({"values": values, "out_dir": out_dir, "argv": run_argv, "settings": settings})
    if args.print:
        launcher = (
            ["python"]
            if args.nproc_per_node == 1
            else ["torchrun", "--standalone", f"--nproc_per_node={args.nproc_per_node}"]
        )
        for run in runs:
            print(shlex.join([*launcher, "train.py", *run["argv"]]))
        return runs
    for i, run in enumerate(runs, 1):
        state = sweeps.state(run["out_dir"], vars(run["settings"]))
        print(f"=== sweep run {i}/{len(runs)}: {run['out_dir']} ({state})", flush=True)
        if state == "finished":
            run["result"] = "skipped: finished before"
            continue
        resume = (
            ["--init_from=resume"]
            if state == "partial" and os.path.isfile(os.path.join(run["out_dir"], "ckpt.pt"))
            else []
        )
        code, signalled = train_in_child([*run["argv"], *resume])
        if signalled or (code == 0 and sweeps.state(run["out_dir"], vars(run["settings"])) != "finished"):
            print("sweep stopped; the same command continues it", flush=True)
            break
        # one bad corner of the grid (a learning rate that diverges) does not end the sweep
        run["result"] = "trained" if code == 0 else f"failed (exit {code}): see its error above"
    report(runs)
    return runs


def train_in_child(argv: list[str]) -> tuple[int, bool]:
    """Run train.py with argv in a fresh interpreter, as a user would; returns (its exit code,
    whether this process was signalled meanwhile). SIGTERM is passed on to the run, which then
    saves a checkpoint and stops; Ctrl-C reaches it from the terminal directly (and a second
    copy would make it exit without saving), so it is only noted here."""
    child = subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *argv])
    signalled = []

    def pass_on(signum, frame):
        signalled.append(signum)
        if signum == signal.SIGTERM:
            child.send_signal(signum)

    previous = {signum: signal.signal(signum, pass_on) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        return child.wait(), bool(signalled)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def report(runs: list[dict]) -> None:
    """The table of every run that logged something, and the one with the lowest best val loss."""
    loaded = [Run.load(run["out_dir"]) for run in runs if os.path.isfile(os.path.join(run["out_dir"], "metrics.jsonl"))]
    if not loaded:
        return
    print(table(loaded))
    scored = [(min(r["val_loss"] for r in run.rows("val_loss")), run.name) for run in loaded if run.rows("val_loss")]
    if scored:
        best, name = min(scored)
        print(f"winner: {name} (best val loss {best:.4f})")


if __name__ == "__main__":
    exit_on_error(main)
