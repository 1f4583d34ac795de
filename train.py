"""
Train a GPT on a folder of token shards. One GPU or CPU:
    python train.py config/shakespeare_char.py
    python train.py config/shakespeare_char.py --max_iters=500 --device=cpu
    python train.py --help                        # every setting with its default and meaning
Several GPUs (DDP), one node or many:
    torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py
Resume after a crash or preemption (settings come back from the checkpoint):
    python train.py --init_from=resume --out_dir=out-shakespeare-char
Evaluate or fine-tune llama2.c's checkpoints (its shape comes from the file):
    python train.py config/tinystories_15m.py --init_from=stories15M.bin --eval_only=True
In-process (tests, notebooks): train.run(TrainSettings(...)) returns the final metrics.
Every run writes out_dir/config.json and metrics.jsonl, and prints alarms (plateau, overfitting,
epochs) as they first hold; see the loss of one run or several against tokens with:
    python plot.py out-shakespeare-char

Every setting below can be overridden by a config file or --key=value (configurator.py). These
lines are the defaults, written only here: fitgpt/settings.py reads them (plain `name = value`
lines before the first import) without running this file, and holds their types, bounds and
help. The defaults train GPT-2 124M on FineWeb.
"""

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
overwrite = False  # start a new run in an out_dir that holds one: its files are moved to out_dir/replaced-<time>/
init_from = "scratch"  # 'scratch' | 'resume' | 'gpt2' ... 'gpt2-xl' | a local Hugging Face folder | a llama2.c .bin
wandb_log = False
wandb_project = "fitgpt"
wandb_run_name = "run"
# alarms: each printed once, when it first holds, and recorded in metrics.jsonl (0 turns one off)
alarm_epochs = 1.0  # alarm when the run plans more epochs than this, and at each epoch boundary from there
patience = 5  # plateau alarm: this many evaluations without a val loss improvement
min_delta = 0.0  # an evaluation improves on the best val loss only by more than this
early_stop = False  # stop, saving a checkpoint, while the plateau alarm holds
overfit_evals = 3  # overfitting alarm: the val-train gap widened at this many evaluations in a row ...
overfit_gap = 0.05  # ... and by at least this much in all
rise_evals = 2  # alarm: val loss rose at this many evaluations in a row while lr is above half its peak
hellaswag_interval = 0  # score HellaSwag (evaluate.py's scorer) every this many iterations and at the end; 0: off
hellaswag_limit = 0  # score only the first N items during training; 0: all 10,042
hellaswag_file = ""  # a local hellaswag_val.jsonl; empty: data/hellaswag/'s, downloaded once
# data
dataset = "fineweb"
data_dir = ""  # empty means data/<dataset> beside this file
data_order = "random"  # 'random' (nanoGPT) | 'sequential' (llm.c)
auto_prepare = False  # run data/<dataset>/prepare.py when the dataset is missing (small datasets)
gradient_accumulation_steps = 32  # micro-steps per optimizer step, summed over all ranks
batch_size = 16  # micro-batch size per rank
block_size = 1024
# model (see GPTConfig in fitgpt/architecture.py)
n_layer = 12
n_head = 12
n_embd = 768
n_kv_heads = None  # None: n_head (no grouped-query attention)
vocab_size = None  # None: from the dataset's meta.json (GPT-2's 50257 without one)
vocab_multiple = 64  # pad the embedding and output layer to a multiple of this (50257 -> 50304)
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
logit_softcap = 0.0  # bound the logits to +-this: cap * tanh(logits / cap); 0: off
zero_init_proj = False  # start the attention and MLP output projections at zero
activation_checkpointing = 0  # every k-th block recomputes its activations in backward (0: off)
loss_chunks = 0  # output layer + loss over this many chunks of tokens: the fp32 logits never whole (0: off)
# the optimizer (fitgpt/optim.py); Muon's defaults are nanochat's (lr 0.02, Nesterov momentum 0.95, no decay)
optimizer = "adamw"  # 'adamw' | 'muon': Muon for the blocks' matrices, AdamW (below) for the rest
muon_lr = 0.02
muon_momentum = 0.95
muon_weight_decay = 0.0
embedding_lr = None  # muon: AdamW's peak lr for the embeddings (and a tied head); None: learning_rate
head_lr = None  # muon: AdamW's peak lr for an untied output layer; None: learning_rate
# AdamW and the learning-rate schedule
learning_rate = 6e-4
max_iters = 19073  # 19073 * 524,288 tokens = 10B tokens
weight_decay = 0.1
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0  # clip the gradient norm to this; 0 disables clipping
decay_lr = True
lr_schedule = "cosine"  # 'cosine' | 'linear' | 'wsd' (warmup, stable at the peak, then a linear decay)
decay_frac = 0.2  # wsd: decay over this last fraction of lr_decay_iters
warmup_iters = 700
lr_decay_iters = 19073  # usually max_iters
min_lr = 6e-5  # usually learning_rate / 10
# system
device = "auto"  # 'auto' | 'cpu' | 'cuda' | 'cuda:N' | 'mps'
dtype = "auto"  # 'auto' | 'bf16' | 'fp16' | 'fp32'
compile = True  # torch.compile the model
compile_mode = "default"  # 'default' | 'reduce-overhead' (CUDA graphs) | 'max-autotune' | 'max-autotune-no-cudagraphs'
float8 = False  # float8 matmuls in the blocks' linear layers (torchao; compute capability 8.9+)
float8_recipe = "tensorwise"  # 'tensorwise' | 'rowwise' scaling
seed = 1337
peak_flops = 0.0  # the accelerator's peak FLOP/s for MFU; 0 looks the GPU up in fitgpt/hardware.py
backend = "nccl"  # torch.distributed backend under torchrun
parallelism = "ddp"  # under torchrun: 'ddp' (replicas) | 'fsdp' (FSDP2, sharded weights and optimizer)
memory_check = "refuse"  # a predicted reserved peak above the GPU's free memory: 'refuse' | 'warn' | 'off'
dist_timeout = 600.0  # seconds a collective waits for a rank before failing (a rank that died)
# faults
on_nonfinite = "stop"  # NaN/Inf loss or gradient: 'stop' (exit non-zero) | 'skip' the batch
max_skipped_in_a_row = 10
inject_nan_at_iter = -1  # testing hook: poison the loss of this iteration
# -----------------------------------------------------------------------------
from fitgpt.errors import ConfigError, StopRequest, exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import dataclasses
import math
import os
from contextlib import nullcontext

import torch

import configurator
from fitgpt import checkpoint, distributed, hardware, hellaswag, runtime, startup, tokenization
from fitgpt.bpb import val_bytes
from fitgpt.loader import RunData, run_data
from fitgpt.optim import build_optimizer, get_lr, set_lr
from fitgpt.runfiles import dataset_facts, run_config
from fitgpt.runlog import RunLog, Throughput
from fitgpt.settings import TrainSettings
from fitgpt.training import estimate_loss, out_of_memory_hint, skip_nonfinite
from model import GPT, GPTConfig


def build_model(s: TrainSettings, meta: dict | None, resumed: dict | None) -> GPT:
    """The model to train: the checkpoint's on resume, a llama2.c file's, a Hugging Face model's,
    or a new one; with the run's training choices, which are not part of its shape."""
    if resumed is not None:
        model = checkpoint.model_from_checkpoint(resumed)
    elif s.init_from == "scratch":
        model = GPT(GPTConfig.from_settings(s, vocab_size=s.vocab_size or tokenization.dataset_vocab_size(meta)))
    elif os.path.isfile(s.init_from):  # a llama2.c .bin (Hugging Face models are folders or Hub names)
        from fitgpt.llama2c import load_llama2c

        model = load_llama2c(s.init_from, block_size=s.block_size, dropout=s.dropout)
    else:
        from fitgpt.hf import load_hf  # 'gpt2' ... 'gpt2-xl' or a local folder; needs transformers

        model = load_hf(s.init_from, block_size=s.block_size, dropout=s.dropout)[0]
    model.activation_checkpointing, model.loss_chunks = s.activation_checkpointing, s.loss_chunks
    return model


def startup_check(s: TrainSettings, model: GPT, data: RunData, *, dist, device: str, dtype: str) -> float | None:
    """Before the model moves to the device: check the data against its vocabulary, refuse a run
    whose predicted peak memory will not fit, print the plan; returns the device's peak FLOP/s."""
    vocab_size = model.config.vocab_size
    largest_id = max(loader.check_vocab(vocab_size) for loader in (data.train, *data.evals.values()))
    name = runtime.device_name(device)
    peak = hardware.peak_flops(name, hardware.matmul_precision(dtype, device), s.peak_flops)
    summary, refusal = startup.startup_summary(
        model.config,
        s,
        dtype=dtype,
        world_size=dist.world_size,
        peak_flops=peak,
        free_bytes=runtime.free_memory(device),
        device_name=name,
    )
    if refusal:
        raise ConfigError(refusal)
    if dist.master:
        warning = (
            None if s.vocab_size else tokenization.assumed_vocab_warning(data.path, data.meta, vocab_size, largest_id)
        )
        report = [
            startup.data_line(data.path, data.split_tokens, s.tokens_per_iter, s.max_iters),
            *summary,
            runtime.device_line(device, dtype, model.config.head_dim),
        ]
        print("\n".join(report + ([warning] if warning else [])))
    return peak


def run(s: TrainSettings, explicit: dict | None = None) -> dict:
    """Train as s says (explicit: the settings given on the command line, which win over a
    resumed checkpoint's); returns the final metrics. Rank 0 holds out_dir's lock throughout:
    one run per folder."""
    s, resumed = checkpoint.resolve_resume(s, explicit or {})
    dist = distributed.from_environment(s.parallelism)
    with checkpoint.claim_out_dir(s.out_dir, s.init_from, s.overwrite) if dist.master else nullcontext():
        return train(s, resumed, dist)


def train(s: TrainSettings, resumed: dict | None, dist: distributed.Distributed) -> dict:
    """The run itself, on this rank: s resolved, its checkpoint loaded (on resume), out_dir held."""
    micro_steps = distributed.micro_steps_per_rank(s.gradient_accumulation_steps, dist.world_size)
    device = distributed.join(dist, s.device, s.backend, s.dist_timeout)
    device, dtype, ctx = runtime.setup_device(device, s.dtype, s.seed)  # the same initial weights on every rank

    # ---- data: token shards, read in windows of block_size + 1 tokens ----
    data = run_data(s, dist.rank, dist.world_size, device)  # prepared first when missing, with auto_prepare
    tokenizer = tokenization.tokenizer_identity(data.meta, data.path)  # travels in the checkpoints
    checkpoint.check_tokenizer(s, resumed, data.path, tokenizer)
    val_counts, no_bpb = val_bytes(data.path, data.meta, keep=dist.master)  # the val text's bytes, for bits per byte

    # ---- model and optimizer, and on resume their state, the data position and the RNGs ----
    model = build_model(s, data.meta, resumed)  # on the CPU: it moves to the device once the plan says it fits
    peak = startup_check(s, model, data, dist=dist, device=device, dtype=dtype)
    if s.float8:
        swapped = runtime.convert_to_float8(model, s.float8_recipe, device)
        if dist.master:
            print(
                f"float8 ({s.float8_recipe}): {swapped} linear layers"
                + (", emulated on CPU" if device == "cpu" else "")
            )
    step_model, ctx = distributed.wrap(
        model.to(device), dist, device, compile=s.compile, dtype=dtype, autocast=ctx, compile_mode=s.compile_mode
    )
    if dist.rank:  # each rank its own dropout masks (the weights were made alike above)
        torch.manual_seed(s.seed + dist.rank)
    optimizer = build_optimizer(model, s, device)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype == "fp16")
    checkpoints = checkpoint.RunCheckpoints(
        s, dist, tokenizer, model=model, optimizer=optimizer, scaler=scaler, loader=data.train
    )
    progress = checkpoints.restore(resumed) if resumed else checkpoint.Progress()
    resumed = None  # free its memory
    if dist.master and s.init_from == "resume":
        print(f"resuming from {s.out_dir}/ckpt.pt at iteration {progress.iter_num}")

    # ---- what the run reports: config.json, metrics.jsonl, the console, wandb, the alarms ----
    config = run_config(
        s,
        model.config,
        dataset=dataset_facts(data.path, data.meta, data.split_tokens, val_counts),
        device=runtime.device_name(device),
        dtype=dtype,
        world_size=dist.world_size,
        versions=checkpoint.library_versions(),
    )
    if dist.master and no_bpb:
        print(no_bpb)
    log = RunLog(s, dist.master, config, progress)  # writes config.json, raises the alarms the plan holds
    hellaswag_items = None
    if s.hellaswag_interval:  # read and tokenized once: a missing file fails now, not hours in
        items = hellaswag.read_items(hellaswag.locate(s.hellaswag_file))
        encode = tokenization.get_tokenizer(data.meta, data.path)
        hellaswag_items = hellaswag.encode_items(items[: s.hellaswag_limit or None], encode)

    losses, loss, interrupted, laps, skipped_in_a_row = {}, float("nan"), False, 0, 0
    if s.eval_only or (progress.iter_num == 0 and s.max_iters > 0):
        losses = estimate_loss(step_model, data.evals, s.eval_iters, ctx, dist=dist, device=device)
        log.evaluation(progress, losses, get_lr(progress.iter_num, s))

    # ---- training loop ----
    rates = Throughput(
        progress,
        tokens_per_iter=s.tokens_per_iter,
        flops_per_token=config["flops_per_token"],
        peak_flops=peak,
        world_size=dist.world_size,
        max_iters=s.max_iters,
    )
    with StopRequest() as stop:
        step_model.train()
        while progress.iter_num < s.max_iters and not s.eval_only:
            lr = get_lr(progress.iter_num, s)
            set_lr(optimizer, lr)  # every group: lr times its own peak over learning_rate

            # forward and backward over the micro-steps, the gradients summed (scaled by 1/micro_steps)
            loss_sum = 0.0
            with out_of_memory_hint(s, device):
                for micro_step in range(micro_steps):
                    x, y = data.train.next_batch()
                    # DDP/FSDP reduce the gradients over the ranks on the last micro-step only
                    distributed.sync_gradients(step_model, dist, micro_step == micro_steps - 1)
                    with ctx:
                        loss = step_model(x, y)[1]  # not the logits: kept through backward, 2 bytes x vocab a token
                    if progress.iter_num == s.inject_nan_at_iter:
                        loss = loss * float("nan")  # a testing hook
                    loss_sum += loss.detach()  # a tensor: nothing waits for the GPU here
                    scaler.scale(loss / micro_steps).backward()
            # the mean over every micro-step of every rank: the run's loss, and one decision for all ranks
            loss = distributed.sum_over_ranks([loss_sum.item()], dist, device)[0] / s.gradient_accumulation_steps

            # clip the gradients, then step: unless the loss or the gradient is NaN/Inf
            scaler.unscale_(optimizer)
            norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip or math.inf)
            grad_norm = distributed.local_norm(norm).item()  # before clipping
            skip = skip_nonfinite(
                s, progress.iter_num, loss, grad_norm, scaled=scaler.is_enabled(), in_a_row=skipped_in_a_row
            )
            if not skip:
                scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
            skipped_in_a_row = skipped_in_a_row + 1 if skip else 0

            # evaluate, log, and advance the progress: the one place it changes
            iter_num = progress.iter_num + 1
            evaluated = iter_num % s.eval_interval == 0 or iter_num == s.max_iters
            losses = {}
            if evaluated:
                with rates.paused():  # ms/iter and tokens/s count training time only
                    losses = estimate_loss(step_model, data.evals, s.eval_iters, ctx, dist=dist, device=device)
            logged = iter_num % s.log_interval == 0 or evaluated
            lap = rates.lap(iter_num) if logged else {}
            improved = bool(losses) and losses["val"] < progress.best_val_loss
            progress = dataclasses.replace(
                progress,
                iter_num=iter_num,
                tokens_seen=progress.tokens_seen + s.tokens_per_iter,
                best_val_loss=losses["val"] if improved else progress.best_val_loss,
                skipped_batches=progress.skipped_batches + skip,
                elapsed_s=lap.get("elapsed_s", progress.elapsed_s),
            )
            if logged:
                log.step(progress, loss=loss, lr=lr, grad_norm=grad_norm, rates=lap, losses=losses)  # and new alarms
                laps += 1
                if laps == 2:  # once, the first lap (compilation) behind it: the plan against the measurement
                    check = startup.plan_check(
                        model.config,
                        s,
                        iter_num=iter_num,
                        dtype=dtype,
                        world_size=dist.world_size,
                        device_name=runtime.device_name(device),
                        measured=runtime.peak_memory(device),
                        measured_mfu=lap["mfu"],
                    )
                    log.plan_check(progress, check)

            # stop on a signal or early_stop (all ranks together), score HellaSwag, save a checkpoint
            reason = f"{stop.requested} received" if stop.requested else log.stop_reason
            if distributed.any_rank(reason is not None, dist, device):
                reason = reason or "a signal to another rank received"
                interrupted = reason != log.stop_reason  # a signal, not early_stop: the run is not finished
                checkpoints.save(progress, reason)
                log.stopped(progress.iter_num, s.out_dir)
                break
            last = iter_num == s.max_iters
            if hellaswag_items and (iter_num % s.hellaswag_interval == 0 or last):
                with rates.paused():  # the plain model: compiled, every item length would recompile
                    log.hellaswag(progress, hellaswag.evaluate(model, hellaswag_items, ctx, device, dist=dist))
            due = iter_num % (s.ckpt_interval or s.eval_interval) == 0 or last
            if due and (s.always_save_checkpoint or improved):
                checkpoints.save(progress, "final" if last else "periodic")
    if not s.eval_only:
        log.summary(progress, rates.wall_seconds(), checkpoints.last_path, finished=not interrupted)
    log.close()
    step_model = None  # release DDP's communication objects while the process group still exists
    distributed.teardown(dist)
    final = {"iter": progress.iter_num, "tokens": progress.tokens_seen, "loss": loss, "val_loss": losses.get("val")}
    return {**final, "best_val_loss": progress.best_val_loss, "skipped": progress.skipped_batches}


def main(argv: list[str]) -> dict:
    settings, given = configurator.parse(argv, TrainSettings, __doc__.strip())
    return run(settings, given)


if __name__ == "__main__":
    exit_on_error(main)
