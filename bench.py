"""
Training speed for a config, without a dataset or a full run: ms per iteration, tokens/s, MFU and
peak memory, from the same model, optimizer and micro-step code as train.py.
    python bench.py config/shakespeare_char.py
    python bench.py config/tinystories_15m.py --batch_size=32 --compile=True
    python bench.py config/shakespeare_char.py --real_data=True   # batches from the config's dataset
Takes every train.py setting, plus those below. Random tokens are the default: speed does not
depend on the data, and no dataset has to be prepared.
"""
import resource
import sys
import time
from types import SimpleNamespace

import torch

import configurator
import train
from loader import TokenLoader, data_dir_of, dataset_meta
from model import GPT, GPTConfig
from runtime import SetupError, peak_flops, setup_device

BENCH_DEFAULTS = {
    "bench_steps": 10,  # timed optimizer steps
    "bench_warmup": 2,  # untimed steps first (compilation, allocator warm-up)
    "real_data": False,  # read batches from the dataset instead of random tokens
}


def random_batches(vocab_size, batch_size, block_size, device, seed=0):
    generator = torch.Generator().manual_seed(seed)

    def next_batch():
        tokens = torch.randint(0, vocab_size, (batch_size, block_size + 1), generator=generator)
        tokens = tokens.to(device)
        return tokens[:, :-1], tokens[:, 1:]

    return next_batch


def main(c):
    if c.bench_steps <= 0 or c.bench_warmup < 0:
        raise ValueError("bench_steps must be positive and bench_warmup >= 0")
    device, dtype, ctx = setup_device(c.device, c.dtype, seed=c.seed)
    device_type = device.split(":")[0]
    if c.vocab_size is None:  # as train.py: the dataset's vocabulary, else GPT-2's padded to 50304
        meta = dataset_meta(vars(c))[1]
        c.vocab_size = meta["vocab_size"] if meta else 50304
    model = GPT(GPTConfig(**train.model_args_from(c))).to(device)
    optimizer = model.configure_optimizers(c.weight_decay, c.learning_rate, (c.beta1, c.beta2), device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype == "fp16"))
    flops_per_token = model.flops_per_token()
    compiled = torch.compile(model) if c.compile else model
    if c.real_data:
        next_batch = TokenLoader(data_dir_of(vars(c)), "train", c.batch_size, c.block_size, c.data_order,
                                 c.seed, device=device).next_batch
    else:
        next_batch = random_batches(c.vocab_size, c.batch_size, c.block_size, device)
    tokens_per_step = c.batch_size * c.block_size * c.gradient_accumulation_steps
    print(f"{model.num_params():,} parameters, {flops_per_token / 1e6:.1f} MFLOPs/token; device {device}, {dtype}, "
          f"compile={c.compile}; batch_size={c.batch_size} x block_size={c.block_size} x "
          f"{c.gradient_accumulation_steps} micro-steps = {tokens_per_step:,} tokens per step")

    def step():
        train.forward_backward(compiled, next_batch, c.gradient_accumulation_steps, ctx, scaler)
        scaler.unscale_(optimizer)
        if c.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    def sync():
        if device_type == "cuda":
            torch.cuda.synchronize()

    try:
        for _ in range(c.bench_warmup):
            step()
        sync()
        if device_type == "cuda":
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        for _ in range(c.bench_steps):
            step()
        sync()
    except torch.OutOfMemoryError:
        peak_gb = torch.cuda.max_memory_allocated(device) / 2**30
        sys.exit("error: " + train.out_of_memory_message(c.batch_size, c.block_size, c.gradient_accumulation_steps,
                                                         peak_gb))
    seconds = (time.perf_counter() - t0) / c.bench_steps
    tok_per_s = tokens_per_step / seconds
    peak = peak_flops(device, c.peak_flops)
    mfu = f"{100 * flops_per_token * tok_per_s / peak:.1f}%" if peak else "n/a (set peak_flops)"
    if device_type == "cuda":
        memory = f"peak GPU memory {torch.cuda.max_memory_allocated(device) / 2**30:.2f} GiB"
    else:
        memory = f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB"
    print(f"{seconds * 1000:.1f} ms per step, {tok_per_s:,.0f} tokens/s, MFU {mfu}, {memory}")


if __name__ == "__main__":
    defaults = {**{k: getattr(train, k) for k in train.SETTINGS}, **BENCH_DEFAULTS}
    try:
        settings = {**defaults, **configurator.parse_args(sys.argv[1:], defaults)}
        main(SimpleNamespace(**settings))
    except (configurator.ConfigError, SetupError, ValueError) as e:
        sys.exit(f"error: {e}")
