"""
Cost of one checkpoint save (atomic write + fsync) for GPT-2 124M with its AdamW state, on this
machine, of checking its per-record CRC-32 checksums, and of loading it back (checked).

    python benchmarks/checkpoint_bench.py [--repeats 3] [--dir /path/on/the/disk/to/test]
"""

import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import configurator
from fitgpt import flops
from fitgpt.checkpoint import capture_rng_state, library_versions, load_checkpoint, verify_checksums, write_checkpoint
from fitgpt.errors import exit_on_error
from fitgpt.optim import build_optimizer
from fitgpt.settings import TrainSettings
from model import GPT, GPTConfig


def main(argv: list[str]) -> None:
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", default=None, help="folder to write in (default: a temporary folder)")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    model = GPT(GPTConfig())  # GPT-2 124M
    optimizer = build_optimizer(model, TrainSettings(weight_decay=0.1, learning_rate=6e-4), "cpu")
    idx = torch.randint(0, model.config.vocab_size, (1, 64))
    model(idx, idx)[1].backward()
    optimizer.step()  # creates the two AdamW moment buffers per parameter
    checkpoint = {
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "model_args": {},
        "iter_num": 1,
        "rng": capture_rng_state(),
        "versions": library_versions(),
    }
    with tempfile.TemporaryDirectory(dir=args.dir) as out:
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            path = write_checkpoint(out, checkpoint)
            times.append(time.perf_counter() - t0)
        size_mb = os.path.getsize(path) / 1e6
        verify = []
        for _ in range(args.repeats):  # the file is in the page cache: this is the checksum's own speed
            t0 = time.perf_counter()
            verify_checksums(path)
            verify.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        load_checkpoint(path)  # checksums, then torch.load
        load_s = time.perf_counter() - t0
    verify_s = statistics.median(verify)
    print(
        f"GPT-2 124M ({flops.param_count(model.config):,} params) + AdamW state: checkpoint {size_mb:.0f} MB; "
        f"save {statistics.median(times):.2f} s median of {args.repeats} (min {min(times):.2f}, max {max(times):.2f}), "
        f"{size_mb / statistics.median(times):.0f} MB/s; checksum check {verify_s:.2f} s median of {args.repeats} "
        f"({size_mb / 1e3 / verify_s:.2f} GB/s); load with the check {load_s:.2f} s"
    )


if __name__ == "__main__":
    exit_on_error(main)
