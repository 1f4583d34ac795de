"""
Loader benchmark: time to open a 147-shard dataset (sparse files, 14.7B tokens) and its RSS, and
time per batch from real on-disk shards, for both data orders.

    python benchmarks/loader_bench.py [--batch_size 16] [--block_size 1024]
"""

import os
import resource
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import configurator
from fitgpt.errors import exit_on_error
from fitgpt.loader import TokenLoader
from fitgpt.shards import HEADER_BYTES, MAGIC, write_shard


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def sparse_dataset(folder, shards=147, tokens=100_000_000):
    header = np.zeros(256, dtype="<i4")
    header[:3] = (MAGIC, 1, tokens)
    for i in range(shards + 1):
        name = f"fineweb_val_{i:06d}.bin" if i == 0 else f"fineweb_train_{i:06d}.bin"
        with open(os.path.join(folder, name), "wb") as f:
            f.write(header.tobytes())
            f.truncate(HEADER_BYTES + 2 * tokens)


def main(argv: list[str]) -> None:
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--block_size", type=int, default=1024)
    parser.add_argument("--batches", type=int, default=500)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        sparse = os.path.join(tmp, "sparse")
        os.makedirs(sparse)
        sparse_dataset(sparse)
        before = rss_mb()
        t0 = time.perf_counter()
        loader = TokenLoader(sparse, "train", args.batch_size, args.block_size, "random")
        opened = time.perf_counter() - t0
        print(
            f"147 shards x 100M tokens ({loader.num_tokens / 1e9:.1f}B tokens): opened in {opened * 1000:.1f} ms, "
            f"RSS {before:.0f} -> {rss_mb():.0f} MB"
        )

        real = os.path.join(tmp, "real")
        os.makedirs(real)
        rng = np.random.default_rng(0)
        for i in range(4):  # 4 x 25M tokens = 200 MB of real data
            write_shard(os.path.join(real, f"r_train_{i:06d}.bin"), rng.integers(0, 50257, 25_000_000, dtype=np.uint16))
        for order in ("random", "sequential"):
            loader = TokenLoader(real, "train", args.batch_size, args.block_size, order)
            loader.next_batch()
            t0 = time.perf_counter()
            for _ in range(args.batches):
                loader.next_batch()
            per_batch = (time.perf_counter() - t0) / args.batches
            tokens = args.batch_size * args.block_size
            print(
                f"{order:>10}: {per_batch * 1000:.3f} ms per batch of {args.batch_size}x{args.block_size} "
                f"({tokens / per_batch / 1e6:.1f}M tokens/s), peak RSS "
                f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
            )


if __name__ == "__main__":
    exit_on_error(main)
