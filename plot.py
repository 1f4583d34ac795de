"""
Loss curves of several runs on one chart, against tokens (so that runs of different batch sizes
compare), iterations, training FLOPs or wall time: val loss with dots, train loss faint, the
learning rate in a panel below (HellaSwag acc_norm between them when a run scored it), a dashed
line where each run finished one epoch and a cross at each other alarm it raised; then a table of
the runs (final and best val loss, tokens, epochs, alarms).
    python plot.py out-small out-large                      # writes loss.png
    python plot.py out-* --x flops --log_x --smooth 5 --out runs.svg
    python plot.py out-char out-gpt2 --y bpb                # val bits per byte: runs of any tokenizer compare
Reads each folder's config.json and metrics.jsonl only (runs still being written too), without
torch; legends name each run by its folder, its size and its peak learning rate.
"""

import argparse
import os

import configurator
from fitgpt.errors import ConfigError, SetupError, exit_on_error
from fitgpt.runs import AXES, Run, human_count, moving_average, short_float, table

FORMATS = (".png", ".svg", ".pdf")
AXIS_LABELS = {"tokens": "tokens", "iters": "iterations", "flops": "training FLOPs", "time": "wall time"}
YLABELS = {"loss": "val loss", "bpb": "val bits per byte"}
FIGSIZE, DPI = (10, 7), 100  # a PNG of 1000 x 700 pixels


def arguments(argv: list[str]) -> argparse.Namespace:
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("runs", nargs="+", metavar="OUT_DIR", help="run folders (train.py's out_dir)")
    parser.add_argument("--x", choices=list(AXES), default="tokens", help="the horizontal axis (default tokens)")
    parser.add_argument("--log_x", action="store_true", help="a logarithmic horizontal axis")
    parser.add_argument(
        "--y", choices=("loss", "bpb"), default="loss", help="nats per token (default), or val bits per UTF-8 byte"
    )
    parser.add_argument("--smooth", type=int, default=1, metavar="N", help="average train loss over N logged steps")
    parser.add_argument("--out", default="loss.png", help="the chart's file: .png, .svg or .pdf (default loss.png)")
    args = parser.parse_args(argv)
    if args.smooth < 1:
        raise ConfigError(f"--smooth {args.smooth}: give the number of logged steps to average, 1 or more")
    if os.path.splitext(args.out)[1].lower() not in FORMATS:
        raise ConfigError(f"--out {args.out}: name a {', '.join(FORMATS)} file")
    return args


def time_unit(runs: list[Run]) -> tuple[str, float]:
    """Seconds, minutes or hours, whichever suits the longest run."""
    longest = max((max(run.series("time", "iter")[0], default=0) for run in runs), default=0)
    if longest > 2 * 3600:
        return "h", 3600.0
    return ("min", 60.0) if longest > 120 else ("s", 1.0)


def draw(runs: list[Run], axis: str, log_x: bool, smooth: int, out: str, y: str = "loss") -> None:
    try:
        import matplotlib
    except ImportError:
        raise SetupError("plot.py needs matplotlib: pip install matplotlib") from None
    matplotlib.use("Agg")  # headless: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import EngFormatter, FuncFormatter

    unit, scale = time_unit(runs) if axis == "time" else ("", 1.0)

    def visible(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
        pairs = [(x / scale, y) for x, y in zip(xs, ys) if x > 0 or not log_x]  # 0 has no place on a log axis
        return [x for x, _ in pairs], [y for _, y in pairs]

    scored = any(run.rows("hellaswag_acc_norm") for run in runs)  # a HellaSwag panel only when there are scores
    fig, axes = plt.subplots(
        3 if scored else 2,
        1,
        sharex=True,
        figsize=FIGSIZE,
        dpi=DPI,
        height_ratios=(3, 1, 1)[: 3 if scored else 2],
        layout="constrained",
    )
    loss_ax, lr_ax = axes[0], axes[-1]
    handles, marked = [], False
    val_key = "val_bpb" if y == "bpb" else "val_loss"  # in bits per byte only val: the train text's bytes are unknown
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        if y == "loss":
            xs, train = run.series(axis, "loss")
            loss_ax.plot(*visible(xs, moving_average(train, smooth)), color=color, alpha=0.35, lw=1)
        xs, val = run.series(axis, val_key)
        loss_ax.plot(*visible(xs, val), color=color, marker="o", ms=4, lw=1.8)
        lr_ax.plot(*visible(*run.series(axis, "lr")), color=color, lw=1.5)
        if scored:
            axes[1].plot(*visible(*run.series(axis, "hellaswag_acc_norm")), color=color, marker="s", ms=4, lw=1.5)
        crossing = run.epoch_crossing(axis)
        if crossing is not None and (crossing > 0 or not log_x):
            for ax in axes:
                ax.axvline(crossing / scale, color=color, ls="--", lw=1, alpha=0.8)
        for alarm in run.alarms():
            x = run.x_at_iter(axis, alarm["iter"])
            evals = [row for row in run.rows(val_key) if row["iter"] == alarm["iter"]]
            if x is not None and evals and not alarm["alarm"].startswith("epoch"):
                loss_ax.plot(*visible([x], [evals[0][val_key]]), "X", color=color, ms=11, mec="black")
                marked = True
        handles.append(Line2D([], [], color=color, lw=2.5, label=run.label()))
    handles.append(Line2D([], [], color="gray", marker="o", ms=4, lw=1.8, label=YLABELS[y]))
    if y == "loss":
        label = "train loss" + (f" (mean of {smooth})" if smooth > 1 else "")
        handles.append(Line2D([], [], color="gray", alpha=0.35, lw=1, label=label))
    handles.append(Line2D([], [], color="gray", ls="--", lw=1, label="1 epoch"))
    if marked:
        handles.append(Line2D([], [], color="gray", marker="X", ms=9, mec="black", ls="none", label="alarm (table)"))
    keys = ("loss", "val_loss") if y == "loss" else ("val_bpb",)
    later = [row[key] for run in runs for key in keys for row in run.rows(key) if row["iter"] > 0]
    if later:  # the untrained model's loss at iteration 0 would squeeze the curves that matter
        loss_ax.set_ylim(top=max(later) + 0.05 * (max(later) - min(later)))
    loss_ax.legend(handles=handles, loc="upper right", fontsize=9)
    loss_ax.set_ylabel("loss (nats per token)" if y == "loss" else YLABELS[y])
    loss_ax.grid(alpha=0.3)
    if scored:
        axes[1].axhline(0.25, color="gray", ls=":", lw=1)  # chance: one of 4 endings
        axes[1].set_ylabel("HellaSwag acc_norm")
        axes[1].grid(alpha=0.3)
    lr_ax.set_ylabel("learning rate")
    lr_ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: short_float(y) if y else "0"))
    lr_ax.grid(alpha=0.3)
    lr_ax.set_xlabel(AXIS_LABELS[axis] + (f" ({unit})" if unit else ""))
    if log_x:
        lr_ax.set_xscale("log")
    if axis == "flops":
        lr_ax.xaxis.set_major_formatter(EngFormatter(unit="FLOP"))
    elif axis in ("tokens", "iters"):
        lr_ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: human_count(x) if x else "0"))
    fig.savefig(out)
    plt.close(fig)


def main(argv: list[str]) -> None:
    args = arguments(argv)
    runs = [Run.load(path) for path in args.runs]
    if args.y == "bpb":
        unknown = [path for path, run in zip(args.runs, runs) if not run.rows("val_bpb")]
        if unknown:
            raise ConfigError(
                f"--y bpb: {', '.join(unknown)} logged no val_bpb (its dataset's text bytes are unknown); "
                f"plot them with --y loss"
            )
    print(table(runs))
    draw(runs, args.x, args.log_x, args.smooth, args.out, args.y)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    exit_on_error(main)
