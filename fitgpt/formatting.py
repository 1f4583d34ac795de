"""
How figures read on the console: sizes in GiB or MiB, durations, counts, learning rates, and the
lines a training run prints for a step, an evaluation and a HellaSwag score. Every entry point and
module takes its units and its wording of these from here.
"""

GIB = 2**30  # every memory figure fitgpt shows is in GiB (binary); only a GPU's datasheet size is decimal GB
MIB = 2**20


def gib(x: float) -> str:
    """A figure already in GiB: '12.3 GiB'."""
    return f"{x:,.1f} GiB"


def size_text(n: float) -> str:
    """1.25 GiB, 3.0 MiB: a size of a file or of free space, in bytes."""
    return f"{n / GIB:.2f} GiB" if n >= GIB else f"{n / MIB:.1f} MiB"


def duration(seconds: float) -> str:
    """45s, 3m 05s, 2h 14m, 3d 04h."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def human_count(n: float) -> str:
    """208K, 10.7M, 124M, 1.5B."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}"
    return f"{n:.3g}"


def short_float(x: float) -> str:
    """5e-4, 2.5e-4, 1e-3: a learning rate as people write it."""
    mantissa, exponent = f"{x:.2e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


def warn(message: str) -> None:
    print(f"WARNING: {message}", flush=True)


def eval_line(iter_num: int, losses: dict, bpb: float | None = None) -> str:
    line = f"iter {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}"
    return line if bpb is None else f"{line}, val {bpb:.4f} bits per byte"


def step_line(record: dict) -> str:
    mfu = f"{100 * record['mfu']:.1f}%" if record.get("mfu") is not None else "n/a"
    return (
        f"iter {record['iter']}: loss {record['loss']:.4f}, lr {record['lr']:.2e}, {record['ms']:.1f} ms, "
        f"{record['tok_per_s']:,.0f} tok/s, mfu {mfu}, {duration(record['elapsed_s'])} elapsed, "
        f"ETA {duration(record['eta_s'])}"
    )


def hellaswag_line(result: dict) -> str:
    return (
        f"hellaswag: {result['items']:,} items: acc {result['acc']:.4f} ± {result['acc_stderr']:.4f}, "
        f"acc_norm {result['acc_norm']:.4f} ± {result['acc_norm_stderr']:.4f}"
    )
