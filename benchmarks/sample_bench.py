"""
Sampling speed with and without the KV cache, on a randomly initialised model (speed does not
depend on the weights).

    python benchmarks/sample_bench.py                     # tinystories_15m architecture, 500 new tokens
    python benchmarks/sample_bench.py --config config/tinystories_42m.py --new_tokens 200
"""

import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import configurator
from fitgpt import flops
from fitgpt.errors import exit_on_error
from fitgpt.runtime import setup_device
from fitgpt.settings import TrainSettings
from model import GPT, GPTConfig


def main(argv: list[str]) -> None:
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--config", default="config/tinystories_15m.py")
    parser.add_argument("--vocab_size", type=int, default=32000)
    parser.add_argument("--new_tokens", type=int, default=500)
    parser.add_argument(
        "--block_size", type=int, default=512, help="context; at least new_tokens + 1 keeps the cache in use"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"), help="autocast, as sample.py --dtype=bf16")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    settings = TrainSettings(
        **{
            **configurator.read_config_file(args.config, TrainSettings),
            "vocab_size": args.vocab_size,
            "block_size": args.block_size,
        }
    )
    torch.manual_seed(0)
    model = GPT(GPTConfig.from_settings(settings)).eval()
    _, _, ctx = setup_device("cpu", args.dtype)
    print(
        f"{args.config}: {flops.param_count(model.config):,} parameters, block_size {args.block_size}, "
        f"{args.dtype}, {torch.get_num_threads()} threads, {args.new_tokens} new tokens from a 1-token prompt"
    )
    prompt = torch.zeros(1, 1, dtype=torch.long)
    rates = {True: [], False: []}
    for repeat in range(args.repeats):  # interleaved, so a slow spell of a shared machine hits both
        for use_cache in (True, False):
            with ctx:
                model.generate(prompt, 8, use_cache=use_cache)  # warm-up
                t0 = time.perf_counter()
                out = model.generate(prompt, args.new_tokens, temperature=1.0, use_cache=use_cache)
                elapsed = time.perf_counter() - t0
            rates[use_cache].append((out.size(1) - 1) / elapsed)
            print(f"repeat {repeat + 1}: kv_cache={use_cache}: {rates[use_cache][-1]:.1f} tokens/s ({elapsed:.2f} s)")
    with_cache, without_cache = statistics.median(rates[True]), statistics.median(rates[False])
    print(
        f"median of {args.repeats}: {with_cache:.1f} tokens/s with the cache, {without_cache:.1f} without; "
        f"speed-up {with_cache / without_cache:.1f}x"
    )


if __name__ == "__main__":
    exit_on_error(main)
