"""
Train a GPT on a folder of token shards. One GPU or CPU:
    python train.py config/shakespeare_char.py
    python train.py config/shakespeare_char.py --max_iters=500 --device=cpu
Several GPUs (DDP), one node or many:
    torchrun --standalone --nproc_per_node=8 train.py config/fineweb_124m.py
Resume after a crash or preemption (settings come back from the checkpoint):
    python train.py --init_from=resume --out_dir=out-shakespeare-char

Every setting below can be overridden by a config file or --key=value (configurator.py).
The defaults train GPT-2 124M on FineWeb on one GPU.
"""
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch

# -----------------------------------------------------------------------------
# output and checkpoints
out_dir = "out"
eval_interval = 250  # evaluate every this many iterations
eval_iters = 20  # batches per split per evaluation
log_interval = 10
eval_only = False  # evaluate once and exit
ckpt_interval = 0  # write out_dir/ckpt.pt every this many iterations; 0 means eval_interval
keep_last = 0  # also keep this many older checkpoints as ckpt_<iter>.pt
always_save_checkpoint = True  # False: a periodic save happens only when val loss improved
init_from = "scratch"  # 'scratch' | 'resume' | 'gpt2' ... 'gpt2-xl' | a local Hugging Face model folder
wandb_log = False
wandb_project = "fitgpt"
wandb_run_name = "run"
# data
dataset = "fineweb"
data_dir = ""  # empty means data/<dataset> beside this file
data_order = "random"  # 'random' (nanoGPT) | 'sequential' (llm.c)
auto_prepare = False  # run data/<dataset>/prepare.py when the dataset is missing (small datasets)
gradient_accumulation_steps = 32  # micro-steps per optimizer step, summed over all ranks
batch_size = 16  # micro-batch size per rank
block_size = 1024
# model (see GPTConfig in model.py)
n_layer = 12
n_head = 12
n_embd = 768
n_kv_heads = None  # None: n_head (no grouped-query attention)
vocab_size = None  # None: from the dataset's meta.json (GPT-2's 50257 padded to 50304 without one)
dropout = 0.0
bias = False
pos_emb = "learned"
rope_theta = 10000.0
norm = "layernorm"
norm_eps = 1e-5
mlp = "gelu"
mlp_hidden = None
multiple_of = 256
tie_embeddings = True
qk_norm = False
# AdamW and the learning-rate schedule
learning_rate = 6e-4
max_iters = 19073  # 19073 * 524,288 tokens = 10B tokens
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0  # clip the gradient norm to this; 0 disables clipping
decay_lr = True
warmup_iters = 700
lr_decay_iters = 19073  # usually max_iters
min_lr = 6e-5  # usually learning_rate / 10
# system
device = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps'
dtype = "auto"  # 'auto' | 'bf16' | 'fp16' | 'fp32'
compile = True  # torch.compile the model
seed = 1337
peak_flops = 0.0  # the accelerator's peak FLOP/s for MFU; 0 looks the GPU up in runtime.py
backend = "nccl"  # torch.distributed backend under torchrun
# faults
on_nonfinite = "stop"  # NaN/Inf loss or gradient: 'stop' (exit non-zero) | 'skip' the batch
max_skipped_in_a_row = 10
inject_nan_at_iter = -1  # testing hook: poison the loss of this iteration
# -----------------------------------------------------------------------------
import configurator  # noqa: E402  (settings above must be collected before other names exist)

SETTINGS = configurator.setting_names(globals())

from checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: E402
from loader import TokenLoader, data_dir_of  # noqa: E402
from model import GPT, GPTConfig  # noqa: E402
from runtime import SetupError, peak_flops as lookup_peak_flops, setup_device  # noqa: E402
from shards import ShardError, find_shards, read_meta  # noqa: E402


class TrainError(Exception):
    """Bad settings or state; reported as one line and a non-zero exit."""


def get_lr(it, learning_rate, warmup_iters, lr_decay_iters, min_lr, decay_lr=True):
    """Linear warmup over warmup_iters, then cosine decay to min_lr at lr_decay_iters, then flat."""
    if not decay_lr:
        return learning_rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    progress = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)


def forward_backward(model, next_batch, micro_steps, ctx, scaler, ddp=False, poison=False):
    """Accumulate the gradients of the mean loss over micro_steps batches; returns the summed loss
    (a tensor, so nothing waits for the GPU). poison multiplies the loss by NaN (a testing hook)."""
    loss_sum = None
    for micro_step in range(micro_steps):
        x, y = next_batch()
        if ddp:  # all-reduce gradients only on the last micro-step
            model.require_backward_grad_sync = micro_step == micro_steps - 1
        with ctx:
            _, loss = model(x, y)
        if poison:
            loss = loss * float("nan")
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        # scaled so the summed gradients are those of the mean loss over all micro-steps
        scaler.scale(loss / micro_steps).backward()
    return loss_sum


@torch.no_grad()
def estimate_loss(model, loaders, eval_iters, ctx):
    """Mean loss over eval_iters batches of each loader; loaders restart from their seed, so
    every evaluation sees the same batches."""
    was_training = model.training
    model.eval()
    out = {}
    for split, loader in loaders.items():
        loader.reset()
        losses = torch.zeros(eval_iters)
        for k in range(eval_iters):
            x, y = loader.next_batch()
            with ctx:
                _, loss = model(x, y)
            losses[k] = loss.item()
        out[split] = losses.mean().item()
    model.train(was_training)
    return out


def model_args_from(c):
    """GPTConfig fields from the settings."""
    return {name: getattr(c, name) for name in GPTConfig.field_names()}


def capture_rng_state():
    np_state = np.random.get_state()
    state = {"python": random.getstate(),
             "numpy": (np_state[0], np_state[1].tolist()) + tuple(np_state[2:]),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state):
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32)) + tuple(np_state[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def library_versions():
    return {"torch": str(torch.__version__), "numpy": np.__version__, "python": sys.version.split()[0]}


def write_checkpoint(out_dir, checkpoint, keep_last=0):
    """Write ckpt.pt atomically; with keep_last, also ckpt_<iter>.pt, pruning older copies."""
    path = os.path.join(out_dir, "ckpt.pt")
    save_checkpoint(path, checkpoint)
    if keep_last > 0:
        save_checkpoint(os.path.join(out_dir, f"ckpt_{checkpoint['iter_num']}.pt"), checkpoint)
        copies = [f for f in os.listdir(out_dir) if f.startswith("ckpt_") and f.endswith(".pt")]
        copies.sort(key=lambda f: int(f[5:-3]) if f[5:-3].isdigit() else -1)
        for old in copies[:-keep_last]:
            os.remove(os.path.join(out_dir, old))
    return path


def out_of_memory_message(batch_size, block_size, gradient_accumulation_steps, peak_gb):
    if batch_size == 1:
        fix = "lower block_size, use a smaller model, or a GPU with more memory"
    else:
        fix = (f"try batch_size={batch_size // 2} with gradient_accumulation_steps="
               f"{gradient_accumulation_steps * 2} (the same tokens per step)")
    return (f"out of GPU memory with micro-batch batch_size={batch_size}, block_size={block_size} "
            f"(peak {peak_gb:.1f} GiB allocated); {fix}")


def prepare_out_dir(out_dir):
    """Create out_dir, check it is writable, and remove temporary files of saves that were killed."""
    try:
        os.makedirs(out_dir, exist_ok=True)
        probe = os.path.join(out_dir, f".write_test.{os.getpid()}")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise TrainError(f"out_dir {out_dir} is not a writable folder ({e.strerror}); choose another out_dir") from None
    for name in os.listdir(out_dir):
        if ".pt.tmp." in name:  # an interrupted atomic save; the checkpoint it was replacing is intact
            os.remove(os.path.join(out_dir, name))


def all_finite(model):
    return all(torch.isfinite(p).all() for p in model.parameters())


class MetricsLog:
    """out_dir/metrics.jsonl: one JSON object per logged step."""

    def __init__(self, path, resume_iter=None):
        self.path = path
        if resume_iter is not None and os.path.exists(path):
            # drop what was logged after the checkpoint, so a resumed run's log reads as one run
            with open(path, encoding="utf-8") as f:
                kept = [line for line in f if line.strip() and json.loads(line)["iter"] <= resume_iter]
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(kept)
        elif resume_iter is None and os.path.exists(path):
            os.remove(path)

    def write(self, record):
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")


class StopRequest:
    """SIGTERM/SIGINT ask the run to stop after the current iteration; a second SIGINT exits."""

    def __init__(self):
        self.requested = None
        signal.signal(signal.SIGTERM, self._handle)
        signal.signal(signal.SIGINT, self._handle)

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            print("second interrupt: exiting now, without a checkpoint", flush=True)
            os._exit(130)
        self.requested = signal.Signals(signum).name
        print(f"{self.requested} received: finishing this iteration, then saving a checkpoint", flush=True)


def prepare_dataset_if_missing(c):
    """Resolve the data folder; run the dataset's prepare.py first when asked and it has no shards."""
    path = data_dir_of(vars(c))
    if find_shards(path, "train"):
        return path
    prepare = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", c.dataset, "prepare.py")
    if c.auto_prepare and not c.data_dir and os.path.exists(prepare):
        print(f"dataset {c.dataset!r} not prepared yet: running {prepare}", flush=True)
        subprocess.run([sys.executable, prepare], check=True)
        return path
    if c.dataset == "fineweb_edu":
        hint = "run: python data/fineweb/prepare.py --dataset fineweb-edu"
    elif os.path.exists(prepare) and not c.data_dir:
        hint = f"run: python {os.path.relpath(prepare)}"
    else:
        hint = "prepare it with a data/*/prepare.py script (data/text/prepare.py for your own files), or set data_dir"
    raise TrainError(f"no train shards in {path} (or the folder does not exist); {hint}")


def resolve_config(settings, explicit):
    """On resume, the checkpoint's settings come back, overridden by those given explicitly;
    model-shape settings given explicitly must match the checkpoint."""
    if settings["init_from"] != "resume":
        return dict(settings), None
    path = os.path.join(settings["out_dir"], "ckpt.pt")
    checkpoint = load_checkpoint(path)
    config = {**settings, **{k: v for k, v in checkpoint["config"].items() if k in settings}, **explicit}
    config["init_from"] = "resume"
    mismatched = [f"{k}={explicit[k]!r} (checkpoint has {checkpoint['model_args'][k]!r})"
                  for k in explicit if k in checkpoint["model_args"] and explicit[k] != checkpoint["model_args"][k]
                  and not (k == "n_kv_heads" and explicit[k] is None)]
    if mismatched:
        raise TrainError(f"{path}: the config's model shape differs from the checkpoint: "
                         f"{', '.join(mismatched)}; use the checkpoint's settings or a new out_dir")
    return config, checkpoint


def main(settings, explicit):
    config, checkpoint = resolve_config(settings, explicit)
    c = SimpleNamespace(**config)

    # ---- distributed setup: torchrun sets RANK, LOCAL_RANK and WORLD_SIZE ----
    ddp = int(os.environ.get("RANK", -1)) != -1
    rank, local_rank, world_size = 0, 0, 1
    if ddp:
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        world_size = int(os.environ["WORLD_SIZE"])
    if c.gradient_accumulation_steps <= 0 or c.batch_size <= 0 or c.max_iters < 0:
        raise TrainError("batch_size and gradient_accumulation_steps must be positive, max_iters >= 0")
    if (c.batch_size * c.gradient_accumulation_steps) % world_size or c.gradient_accumulation_steps % world_size:
        raise TrainError(f"gradient_accumulation_steps ({c.gradient_accumulation_steps}) must be divisible by "
                         f"the world size ({world_size}); each rank runs an equal share of the micro-steps")
    if c.on_nonfinite not in ("stop", "skip"):
        raise TrainError(f"on_nonfinite must be 'stop' or 'skip', got {c.on_nonfinite!r}")
    if c.eval_interval <= 0 or c.log_interval <= 0 or c.eval_iters <= 0:
        raise TrainError("eval_interval, log_interval and eval_iters must be positive")
    if ddp:
        if c.device == "auto" and torch.cuda.is_available():
            c.device = f"cuda:{local_rank}"
            torch.cuda.set_device(c.device)
        torch.distributed.init_process_group(backend=c.backend if "cuda" in c.device else "gloo")
    master = rank == 0
    micro_steps = c.gradient_accumulation_steps // world_size
    ckpt_interval = c.ckpt_interval or c.eval_interval
    device, dtype_name, ctx = setup_device(c.device, c.dtype, seed=c.seed + rank)
    device_type = device.split(":")[0]
    if master:
        prepare_out_dir(c.out_dir)

    # ---- data ----
    data_dir = prepare_dataset_if_missing(c)
    meta = read_meta(data_dir)
    if c.vocab_size is None:
        c.vocab_size = meta["vocab_size"] if meta else 50304
    train_loader = TokenLoader(data_dir, "train", c.batch_size, c.block_size, c.data_order, c.seed,
                               rank, world_size, device)
    # evaluation always reads the same fixed batches, so val losses are comparable across evals
    eval_loaders = {split: TokenLoader(data_dir, split, c.batch_size, c.block_size, "random", c.seed + 1,
                                       rank, world_size, device) for split in ("train", "val")}
    tokens_per_iter = c.gradient_accumulation_steps * c.batch_size * c.block_size
    if master:
        counts = {split: loader.num_tokens for split, loader in eval_loaders.items()}  # headers already read
        total = tokens_per_iter * c.max_iters
        epochs = total / counts["train"]
        print(f"data: {data_dir}: {counts['train']:,} train / {counts['val']:,} val tokens; "
              f"{tokens_per_iter:,} tokens per iteration x {c.max_iters:,} iterations = {total:,} tokens "
              f"= {epochs:.2f} epochs")
        if epochs > 1:
            print(f"WARNING: this run reads the train split {epochs:.1f} times over; past one epoch val loss "
                  f"plateaus and the model memorises. Fix: prepare more tokens (at least {total:,}), or set "
                  f"max_iters <= {counts['train'] // tokens_per_iter:,} to stay within one epoch.")

    # ---- model and optimizer ----
    if checkpoint is not None:
        model = model_from_checkpoint(checkpoint)
    elif c.init_from == "scratch":
        model = GPT(GPTConfig(**model_args_from(c)))
    else:  # 'gpt2', 'gpt2-medium', ... or a local Hugging Face folder
        from hf import load_hf

        model, _ = load_hf(c.init_from, block_size=c.block_size, dropout=c.dropout)
    model_args = {name: getattr(model.config, name) for name in GPTConfig.field_names()}
    for loader in (train_loader, eval_loaders["val"]):
        loader.check_vocab(model.config.vocab_size)
    model.to(device)
    raw_model = model
    flops_per_token = raw_model.flops_per_token()
    optimizer = raw_model.configure_optimizers(c.weight_decay, c.learning_rate, (c.beta1, c.beta2), device_type)
    scaler = torch.amp.GradScaler(device_type, enabled=(dtype_name == "fp16"))
    iter_num, tokens_seen, best_val_loss, skipped_total = 0, 0, float("inf"), 0
    if checkpoint is not None:
        optimizer.load_state_dict(checkpoint["optimizer"])
        if "scaler" in checkpoint:
            scaler.load_state_dict(checkpoint["scaler"])
        iter_num, tokens_seen = checkpoint["iter_num"], checkpoint.get("tokens_seen", 0)
        best_val_loss = checkpoint.get("best_val_loss", float("inf"))
        skipped_total = checkpoint.get("skipped_batches", 0)
        if "loader" in checkpoint:
            train_loader.load_state_dict(checkpoint["loader"][rank] if isinstance(checkpoint["loader"], list)
                                         else checkpoint["loader"])
        if "rng" in checkpoint:
            restore_rng_state(checkpoint["rng"])
        if master:
            print(f"resuming from {c.out_dir}/ckpt.pt at iteration {iter_num}")
    checkpoint = None  # free the memory
    if master:
        print(f"model: {raw_model.num_params():,} parameters ({raw_model.num_params(True):,} without position "
              f"embeddings); {flops_per_token / 1e6:.1f} MFLOPs per token; device {device}, {dtype_name}")
    if c.compile:
        model = torch.compile(model)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if device_type == "cuda" else None)
    peak = lookup_peak_flops(device, c.peak_flops)

    metrics = MetricsLog(os.path.join(c.out_dir, "metrics.jsonl"), iter_num if c.init_from == "resume" else None) \
        if master else None
    wandb_run = None
    if c.wandb_log and master:
        import wandb

        wandb_run = wandb.init(project=c.wandb_project, name=c.wandb_run_name, config=config)

    def make_checkpoint():
        loader_state = train_loader.state_dict()
        if ddp:
            states = [None] * world_size
            torch.distributed.all_gather_object(states, loader_state)
            loader_state = states
        return {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
                "model_args": model_args, "iter_num": iter_num, "tokens_seen": tokens_seen,
                "best_val_loss": best_val_loss, "skipped_batches": skipped_total, "config": config,
                "loader": loader_state, "rng": capture_rng_state(), "versions": library_versions()}

    def save(reason):
        checkpoint = make_checkpoint()  # every rank joins the gather, only rank 0 writes
        if not master:
            return
        if not all_finite(raw_model):
            raise TrainError(f"iteration {iter_num}: weights hold NaN/Inf; not writing a checkpoint "
                             f"(the last good one in {c.out_dir} is untouched)")
        try:
            path = write_checkpoint(c.out_dir, checkpoint, c.keep_last)
        except OSError as e:
            raise TrainError(f"could not write a checkpoint in {c.out_dir} ({e.strerror}); the previous "
                             f"checkpoint is intact; free disk space or choose another out_dir") from None
        print(f"saved {path} at iteration {iter_num} ({reason})", flush=True)

    def evaluate():
        losses = estimate_loss(model, eval_loaders, c.eval_iters, ctx)
        if ddp:  # average over ranks, so every rank takes the same save decisions
            both = torch.tensor([losses["train"], losses["val"]], device=device)
            torch.distributed.all_reduce(both)
            losses = {"train": both[0].item() / world_size, "val": both[1].item() / world_size}
        if master:
            print(f"iter {iter_num}: train loss {losses['train']:.4f}, val loss {losses['val']:.4f}", flush=True)
        return losses

    if c.eval_only or (iter_num == 0 and c.max_iters > 0):
        losses = evaluate()
        if master:
            metrics.write({"iter": iter_num, "tokens": tokens_seen, "val_loss": losses["val"],
                           "train_eval_loss": losses["train"]})
        if c.eval_only:
            return

    # ---- training loop ----
    stop = StopRequest()
    skipped_in_a_row = 0
    last_log_time, last_log_iter = time.time(), iter_num
    model.train()
    while iter_num < c.max_iters:
        lr = get_lr(iter_num, c.learning_rate, c.warmup_iters, c.lr_decay_iters, c.min_lr, c.decay_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr
        try:
            loss_sum = forward_backward(model, train_loader.next_batch, micro_steps, ctx, scaler, ddp,
                                        poison=iter_num == c.inject_nan_at_iter)
        except torch.OutOfMemoryError:
            peak_gb = torch.cuda.max_memory_allocated(device) / 2**30 if device_type == "cuda" else 0.0
            raise TrainError(out_of_memory_message(c.batch_size, c.block_size, c.gradient_accumulation_steps,
                                                   peak_gb)) from None
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(raw_model.parameters(), c.grad_clip if c.grad_clip > 0 else math.inf)
        loss_value = loss_sum.item() / micro_steps  # one sync per iteration
        finite = math.isfinite(loss_value) and (scaler.is_enabled() or math.isfinite(grad_norm.item()))
        if finite:
            scaler.step(optimizer)
            skipped_in_a_row = 0
        elif c.on_nonfinite == "stop":
            raise TrainError(f"iteration {iter_num}: non-finite loss ({loss_value}) or gradient norm "
                             f"({grad_norm.item()}); no step taken, last checkpoint in {c.out_dir} untouched. "
                             f"Lower learning_rate, or set on_nonfinite='skip'")
        else:
            skipped_total += 1
            skipped_in_a_row += 1
            print(f"iteration {iter_num}: non-finite loss or gradient, batch skipped "
                  f"({skipped_in_a_row} in a row)", flush=True)
            if skipped_in_a_row >= c.max_skipped_in_a_row:
                raise TrainError(f"{skipped_in_a_row} non-finite batches in a row (max_skipped_in_a_row="
                                 f"{c.max_skipped_in_a_row}); stopping. Lower learning_rate or check the data")
        scaler.update()
        optimizer.zero_grad(set_to_none=True)
        iter_num += 1
        tokens_seen += tokens_per_iter

        evaluated = iter_num % c.eval_interval == 0 or iter_num == c.max_iters
        eval_start = time.time()
        losses = evaluate() if evaluated else None
        last_log_time += time.time() - eval_start  # ms/iter and tok/s count training time only
        if master and (iter_num % c.log_interval == 0 or evaluated or iter_num == c.max_iters):
            now = time.time()
            dt = (now - last_log_time) / max(1, iter_num - last_log_iter)
            last_log_time, last_log_iter = now, iter_num
            tok_per_s = tokens_per_iter / dt
            mfu = flops_per_token * tok_per_s / world_size / peak if peak else None
            record = {"iter": iter_num, "tokens": tokens_seen, "epoch": round(train_loader.epochs_done(), 4),
                      "loss": loss_value, "lr": lr, "ms": round(dt * 1000, 2), "tok_per_s": round(tok_per_s, 1),
                      "mfu": mfu, "grad_norm": grad_norm.item(), "skipped": skipped_total}
            if losses is not None:
                record["val_loss"], record["train_eval_loss"] = losses["val"], losses["train"]
            metrics.write(record)
            if wandb_run is not None:
                wandb_run.log(record, step=iter_num)
            mfu_text = f"{100 * mfu:.1f}%" if mfu is not None else "n/a"
            print(f"iter {iter_num}: loss {loss_value:.4f}, lr {lr:.2e}, {dt * 1000:.1f} ms, "
                  f"{tok_per_s:,.0f} tok/s, mfu {mfu_text}", flush=True)

        if losses is not None:
            improved = losses["val"] < best_val_loss
            best_val_loss = min(best_val_loss, losses["val"])
        stop_now = stop.requested is not None
        if ddp:  # every rank must agree to stop at the same iteration
            flag = torch.tensor(float(stop_now), device=device)
            torch.distributed.all_reduce(flag)
            stop_now = flag.item() > 0
        if stop_now:
            save(f"{stop.requested or 'signal'} received")
            if master:
                print(f"stopped at iteration {iter_num}; resume with: python train.py --init_from=resume "
                      f"--out_dir={c.out_dir}", flush=True)
            break
        if iter_num % ckpt_interval == 0 or iter_num == c.max_iters:
            if c.always_save_checkpoint or (evaluated and improved):
                save("periodic" if iter_num < c.max_iters else "final")
    if ddp:
        torch.distributed.barrier()  # wait for rank 0's checkpoint write before tearing down
        model = None  # release DDP's gloo/nccl work objects while the process group still exists
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    try:
        explicit = configurator.apply(globals(), sys.argv[1:], SETTINGS)
        main({k: globals()[k] for k in SETTINGS}, explicit)
    except (configurator.ConfigError, TrainError, CheckpointError, ShardError, SetupError, ValueError) as e:
        sys.exit(f"error: {e}")
