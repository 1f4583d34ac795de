"""
Measurements on the device, for bench.py: the dense matmul ceiling (what the chip really delivers
at each precision, beside its datasheet peak), the largest micro-batch that trains without
running out of memory, and where a step's time goes (a torch.profiler trace, by kernel group).
"""

import math
import os
from collections.abc import Callable

import torch

from fitgpt.architecture import GPTConfig
from fitgpt.runtime import DTYPES

PRECISIONS = ("bf16", "fp16", "tf32", "fp32")
SQUARE_SIZES = {"gpu": (1024, 2048, 4096, 8192), "cpu": (256, 512, 1024)}


def model_matmuls(config: GPTConfig, tokens: int) -> list[tuple[str, int, int, int]]:
    """(name, m, n, k) of the model's own matmuls for `tokens` rows: (m, k) @ (k, n)."""
    c, d = config.n_embd, config.head_dim
    qkv = (config.n_head + 2 * config.n_kv_heads) * d
    return [
        ("attn qkv", tokens, qkv, c),
        ("attn proj", tokens, c, config.n_head * d),
        ("mlp up", tokens, config.hidden_dim, c),
        ("mlp down", tokens, c, config.hidden_dim),
        ("lm_head", tokens, config.padded_vocab_size, c),
    ]


def matmul_tflops(device: str, precision: str, m: int, n: int, k: int, *, min_time: float = 0.2) -> float:
    """Dense (m, k) @ (k, n) TFLOP/s at a precision, timed by torch.utils.benchmark (it warms up,
    synchronizes the device and repeats; the median is taken)."""
    dtype = torch.float32 if precision in ("tf32", "fp32") else DTYPES[precision]
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"  # fp32 means true fp32 matmuls
    try:
        a = torch.randn(m, k, device=device, dtype=dtype)
        b = torch.randn(k, n, device=device, dtype=dtype)
        import torch.utils.benchmark as benchmark  # here: importing it warns when CUDA is absent

        timer = benchmark.Timer(stmt="a @ b", globals={"a": a, "b": b})
        seconds = timer.blocked_autorange(min_run_time=min_time).median
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return 2 * m * n * k / seconds / 1e12


def matmul_table(
    device: str, config: GPTConfig, tokens: int, *, precisions: tuple[str, ...] = PRECISIONS, min_time: float = 0.2
) -> list[dict]:
    """TFLOP/s of square and of the model's matmuls at each precision (CPU: bf16 and fp32 only)."""
    kind = "gpu" if device.startswith("cuda") else "cpu"
    if kind == "cpu":
        precisions = tuple(p for p in precisions if p in ("bf16", "fp32"))
        tokens = min(tokens, 512)  # a CPU would take minutes over a full micro-batch
    shapes = [(f"square {s}", s, s, s) for s in SQUARE_SIZES[kind]] + model_matmuls(config, tokens)
    rows = []
    for name, m, n, k in shapes:
        row = {"shape": name, "m": m, "n": n, "k": k}
        for precision in precisions:
            row[precision] = float(f"{matmul_tflops(device, precision, m, n, k, min_time=min_time):.4g}")
        rows.append(row)
    return rows


def ceiling(rows: list[dict], precision: str) -> float | None:
    """The measured ceiling at a precision: the best TFLOP/s of any shape, in FLOP/s."""
    values = [row[precision] for row in rows if precision in row]
    return max(values) * 1e12 if values else None


def find_batch_size(
    trial: Callable[[int], float], start: int, capacity: float, *, margin: float = 0.05, limit: int = 4096
) -> tuple[int, list[tuple[int, float | None]]]:
    """The largest micro-batch b whose trial(b) (one training step, returning its measured peak
    bytes) neither runs out of memory nor peaks above (1 - margin) x capacity. Starts from start
    (the memory model's prediction), doubles or halves until it brackets the boundary, then
    bisects. Returns (b, [(batch, peak or None when out of memory), ...] in the order tried); b
    is 0 when even one sequence does not fit."""
    tried = []

    def fits(b: int) -> bool:
        try:
            peak = trial(b)
        except torch.OutOfMemoryError:
            tried.append((b, None))
            return False
        tried.append((b, peak))
        return peak <= (1 - margin) * capacity

    b = max(1, min(start, limit))
    if fits(b):
        good, bad = b, None
        while bad is None and good < limit:  # grow until it fails (or the limit)
            nxt = min(2 * good, limit)
            good, bad = (nxt, None) if fits(nxt) else (good, nxt)
        if bad is None:
            return good, tried
    else:
        good, bad = 0, b
        while good == 0 and bad > 1:  # shrink until it fits
            nxt = bad // 2
            good, bad = (nxt, bad) if fits(nxt) else (0, nxt)
        if good == 0:
            return 0, tried
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(mid) else (good, mid)
    return good, tried


KERNEL_GROUPS = (  # first match wins; names of CUDA/ROCm kernels and of CPU aten ops
    ("loss", ("cross_entropy", "log_softmax", "nll_loss", "logsumexp")),
    ("attention", ("flash", "attention", "fmha", "sdpa", "softmax")),
    ("optimizer", ("adam", "foreach", "multi_tensor", "_amp_", "clip_grad", "lerp")),
    ("matmul", ("gemm", "mm", "matmul", "linear", "cutlass", "xmma", "sgemm", "bmm", "dot")),
    ("norm", ("layer_norm", "rms_norm", "norm", "rsqrt")),
    ("activation", ("gelu", "silu", "tanh", "relu", "sigmoid")),
)


def kernel_group(name: str) -> str:
    name = name.lower()
    for group, patterns in KERNEL_GROUPS:
        if any(p in name for p in patterns):
            return group
    return "other"


def profile_steps(step: Callable[[], None], steps: int, out_dir: str, device: str) -> dict:
    """Profile `steps` calls of step with torch.profiler; write a Chrome/Perfetto trace to out_dir
    and return {group: share of the device's (CUDA) or CPU's own time} with the top kernels."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    gpu = device.startswith("cuda")
    if gpu:
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if gpu:
            torch.cuda.synchronize(device)
    os.makedirs(out_dir, exist_ok=True)
    trace = os.path.join(out_dir, "trace.json")
    prof.export_chrome_trace(trace)
    kernels = []
    for event in prof.key_averages():
        own = event.self_device_time_total if gpu else event.self_cpu_time_total
        if own > 0 and (not gpu or event.device_type == torch.autograd.DeviceType.CUDA):
            kernels.append((event.key, own))
    total = sum(t for _, t in kernels) or math.inf
    groups = {}
    for name, own in kernels:
        groups[kernel_group(name)] = groups.get(kernel_group(name), 0) + own / total
    top = sorted(kernels, key=lambda k: -k[1])[:10]
    return {
        "trace": trace,
        "groups": dict(sorted(groups.items(), key=lambda g: -g[1])),
        "top": [{"kernel": name, "group": kernel_group(name), "share": own / total} for name, own in top],
        "ms_per_step": total / 1e3 / steps,
    }
