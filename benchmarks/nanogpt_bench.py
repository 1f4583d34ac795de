"""
nanoGPT's training step, timed the way bench.py times fitgpt's, for a side-by-side ratio in the
same process set (bench.py --suite --nanogpt DIR runs it). DIR is a checkout of
github.com/karpathy/nanoGPT; only its model.py is imported. The loop is nanoGPT's train.py
step: forward under autocast, loss / accumulation, the next batch fetched, scaled backward,
unscale and clip, step, update, zero_grad(set_to_none=True); its fused AdamW from
configure_optimizers; the loss read (.item()) every iteration, as its log_interval=1 does.
    python benchmarks/nanogpt_bench.py --nanogpt ../nanoGPT --n_layer 12 --n_embd 768 --n_head 12 --batch_size 16
Prints one JSON object (bench.py --json's keys for speed and memory).
"""

import argparse
import importlib.util
import json
import os
import sys
import time

import torch


def load_nanogpt(directory: str):
    path = os.path.join(directory, "model.py")
    if not os.path.isfile(path):
        sys.exit(f"error: --nanogpt {directory}: no model.py there (a checkout of github.com/karpathy/nanoGPT)")
    spec = importlib.util.spec_from_file_location("nanogpt_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nanogpt", required=True, help="a nanoGPT checkout")
    for name, default in (("n_layer", 12), ("n_embd", 768), ("n_head", 12), ("batch_size", 16), ("block_size", 1024)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
    parser.add_argument("--compile", type=int, default=1)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()

    nanogpt = load_nanogpt(args.nanogpt)
    torch.manual_seed(1337)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    cuda = args.device.startswith("cuda")
    dtype = torch.bfloat16 if cuda else torch.float32
    ctx = torch.autocast(device_type="cuda", dtype=dtype) if cuda else torch.autocast("cpu", enabled=False)
    config = nanogpt.GPTConfig(
        block_size=args.block_size,
        vocab_size=50304,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_embd=args.n_embd,
        dropout=0.0,
        bias=False,
    )
    model = nanogpt.GPT(config).to(args.device)
    optimizer = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cuda" if cuda else "cpu")
    scaler = torch.amp.GradScaler("cuda" if cuda else "cpu", enabled=False)  # bf16: no scaling, as nanoGPT
    step_model = torch.compile(model) if args.compile else model
    generator = torch.Generator().manual_seed(0)

    def get_batch():
        tokens = torch.randint(0, 50257, (args.batch_size, args.block_size + 1), generator=generator)
        tokens = tokens.pin_memory().to(args.device, non_blocking=True) if cuda else tokens
        return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()  # as nanoGPT's get_batch stacks them

    accumulation = args.gradient_accumulation_steps
    X, Y = get_batch()

    def step() -> float:
        nonlocal X, Y
        for _ in range(accumulation):
            with ctx:
                _, loss = step_model(X, Y)
                loss = loss / accumulation
            X, Y = get_batch()
            scaler.scale(loss).backward()
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        return loss.item() * accumulation

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - t0) / args.steps
    tokens = args.batch_size * args.block_size * accumulation
    result = {
        "params": sum(p.numel() for p in model.parameters()),
        "batch_size": args.batch_size,
        "gradient_accumulation_steps": accumulation,
        "ms_per_step": 1000 * seconds,
        "tokens_per_s": tokens / seconds,
    }
    if cuda:
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
    print(json.dumps(result))


if __name__ == "__main__":
    main()
