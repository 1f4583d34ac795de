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
peak_flops = 0.0  # the accelerator's peak FLOP/s for MFU; 0 looks the GPU up in fitgpt/accounting.py
backend = "nccl"  # torch.distributed backend under torchrun
parallelism = "ddp"  # under torchrun: 'ddp' (replicas) | 'fsdp' (FSDP2, sharded weights and optimizer)
memory_check = "refuse"  # a predicted reserved peak above the GPU's free memory: 'refuse' | 'warn' | 'off'
dist_timeout = 600.0  # seconds a collective waits for a rank before failing (a rank that died)
# faults
on_nonfinite = "stop"  # NaN/Inf loss or gradient: 'stop' (exit non-zero) | 'skip' the batch
max_skipped_in_a_row = 10
inject_nan_at_iter = -1  # testing hook: poison the loss of this iteration
# -----------------------------------------------------------------------------
from fitgpt.errors import ConfigError, exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import dataclasses
import os
from contextlib import nullcontext

import torch

import configurator
from fitgpt import accounting, distributed, hellaswag
from fitgpt.architecture import GPTConfig
from fitgpt.bpb import val_bytes
from fitgpt.checkpoint import (
    Progress,
    RunCheckpoints,
    check_tokenizer,
    claim_out_dir,
    library_versions,
    model_from_checkpoint,
    resolve_resume,
    restore_training,
)
from fitgpt.loader import prepare_if_missing, run_loaders
from fitgpt.metrics import RunLog, Throughput, data_line, run_config
from fitgpt.optim import build_optimizer, set_lr
from fitgpt.planner import plan_check, plan_check_lines, startup_summary
from fitgpt.runtime import convert_to_float8, device_line, device_name, free_memory, peak_memory, setup_device
from fitgpt.settings import TrainSettings
from fitgpt.shards import read_meta
from fitgpt.tokenization import assumed_vocab_warning, dataset_vocab_size, get_tokenizer, tokenizer_identity
from fitgpt.training import (
    NonFiniteGuard,
    StopRequest,
    estimate_loss,
    forward_backward,
    learning_rates,
    optimizer_step,
    out_of_memory_hint,
)
from model import GPT


def build_model(s: TrainSettings, meta: dict | None, checkpoint: dict | None) -> GPT:
    """The model to train: the checkpoint's on resume, a llama2.c file's, a Hugging Face model's,
    or a new one."""
    if checkpoint is not None:
        return model_from_checkpoint(checkpoint)
    if s.init_from == "scratch":
        return GPT(GPTConfig.from_settings(s, vocab_size=s.vocab_size or dataset_vocab_size(meta)))
    if os.path.isfile(s.init_from):  # a llama2.c .bin (Hugging Face models are folders or Hub names)
        from fitgpt.llama2c import load_llama2c

        return load_llama2c(s.init_from, block_size=s.block_size, dropout=s.dropout)
    from fitgpt.hf import load_hf  # 'gpt2' ... 'gpt2-xl' or a local folder; needs transformers

    return load_hf(s.init_from, block_size=s.block_size, dropout=s.dropout)[0]


def startup_check(
    s: TrainSettings,
    model: GPT,
    data_dir: str,
    meta: dict | None,
    train_loader,
    eval_loaders: dict,
    dist: distributed.Distributed,
    device: str,
    dtype: str,
) -> float | None:
    """Before the model moves to the device: check the data against its vocabulary, refuse a run
    whose predicted peak memory will not fit, print the plan; returns the device's peak FLOP/s."""
    largest_id = max(loader.check_vocab(model.config.vocab_size) for loader in (train_loader, *eval_loaders.values()))
    warning = assumed_vocab_warning(data_dir, meta, model.config.vocab_size, largest_id) if not s.vocab_size else None
    peak = accounting.peak_flops(device_name(device), accounting.matmul_precision(dtype, device), s.peak_flops)
    summary, refusal = startup_summary(
        model.config, s, dist.world_size, dtype, peak, free_memory(device), device_name=device_name(device)
    )
    if refusal:
        raise ConfigError(refusal)
    if dist.master:
        split_tokens = (eval_loaders["train"].num_tokens, eval_loaders["val"].num_tokens)
        report = [
            data_line(data_dir, *split_tokens, s.tokens_per_iter, s.max_iters),
            *summary,
            device_line(device, dtype, model.config.head_dim),
        ]
        print("\n".join(report + ([warning] if warning else [])))
    return peak


def run(s: TrainSettings, explicit: dict | None = None) -> dict:
    """Train as s says (explicit: the settings given on the command line, which win over a
    resumed checkpoint's); returns the final metrics. Rank 0 holds out_dir's lock throughout:
    one run per folder."""
    s, checkpoint = resolve_resume(s, explicit or {})
    dist = distributed.from_environment(s.parallelism)
    with claim_out_dir(s.out_dir, s.init_from, s.overwrite) if dist.master else nullcontext():
        return train(s, checkpoint, dist)


def train(s: TrainSettings, checkpoint: dict | None, dist: distributed.Distributed) -> dict:
    """The run itself, on this rank: s resolved, checkpoint loaded (on resume), out_dir held."""
    micro_steps = distributed.micro_steps_per_rank(s.gradient_accumulation_steps, dist.world_size)
    device = distributed.join(dist, s.device, s.backend, s.dist_timeout)
    device, dtype, ctx = setup_device(device, s.dtype, s.seed)  # the same initial weights on every rank

    # ---- data: token shards, read in windows of block_size + 1 tokens ----
    data_dir = prepare_if_missing(dataclasses.asdict(s))
    train_loader, eval_loaders = run_loaders(data_dir, s, dist.rank, dist.world_size, device)
    split_tokens = (eval_loaders["train"].num_tokens, eval_loaders["val"].num_tokens)

    # ---- model and optimizer, and on resume their state, the data position and the RNGs ----
    meta = read_meta(data_dir)
    tokenizer = tokenizer_identity(meta, data_dir)  # travels in the checkpoints
    check_tokenizer(s.init_from, checkpoint, s.out_dir, data_dir, tokenizer)
    val_counts, no_bpb = val_bytes(data_dir, meta, keep=dist.master)  # the val text's bytes, for bits per byte
    model = build_model(s, meta, checkpoint)  # on the CPU: it moves to the device once the plan says it fits
    model.config.activation_checkpointing = s.activation_checkpointing  # training choices, not the shape
    model.config.loss_chunks = s.loss_chunks
    peak = startup_check(s, model, data_dir, meta, train_loader, eval_loaders, dist, device, dtype)
    if s.float8:
        swapped = convert_to_float8(model, s.float8_recipe, device)
        if dist.master:
            print(
                f"float8 ({s.float8_recipe}): {swapped} linear layers"
                + (", emulated on CPU" if device == "cpu" else "")
            )
    step_model, ctx = distributed.wrap(model.to(device), dist, device, s.compile, dtype, ctx, s.compile_mode)
    if dist.rank:  # each rank its own dropout masks (the weights were made alike above)
        torch.manual_seed(s.seed + dist.rank)
    optimizer = build_optimizer(model, s, device)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=dtype == "fp16")
    progress = restore_training(checkpoint, model, optimizer, scaler, train_loader, dist) if checkpoint else Progress()
    checkpoint = None  # free its memory
    if dist.master and s.init_from == "resume":
        print(f"resuming from {s.out_dir}/ckpt.pt at iteration {progress.iter_num}")
    config = run_config(
        s, model.config, data_dir, meta, split_tokens, device_name(device), dtype, dist.world_size, library_versions()
    )
    config["dataset"]["val_bytes"] = val_counts
    if dist.master and no_bpb:
        print(no_bpb)
    log = RunLog(s, dist.master, config, progress)  # writes config.json, raises the alarms the plan holds
    checkpoints = RunCheckpoints(s.out_dir, s.keep_last, dataclasses.asdict(s), dist, tokenizer)
    guard = NonFiniteGuard(s.on_nonfinite, s.max_skipped_in_a_row, s.out_dir, progress)
    lr_at = learning_rates(s)
    hellaswag_items = None
    if s.hellaswag_interval:  # read and tokenized once: a missing file fails now, not hours in
        items = hellaswag.read_items(hellaswag.locate(s.hellaswag_file))
        hellaswag_items = hellaswag.encode_items(items[: s.hellaswag_limit or None], get_tokenizer(meta, data_dir))

    def evaluate(record: bool = False) -> dict:  # over all ranks: every rank takes the same decisions
        losses = estimate_loss(step_model, eval_loaders, s.eval_iters, ctx, dist, device)
        log.evaluation(progress, losses, lr_at(progress.iter_num), record)
        return losses

    losses, loss, interrupted, laps = {}, float("nan"), False, 0
    if s.eval_only or (progress.iter_num == 0 and s.max_iters > 0):
        losses = evaluate(record=True)

    # ---- training loop ----
    rates = Throughput(s.tokens_per_iter, config["flops_per_token"], peak, dist.world_size, progress, s.max_iters)
    with StopRequest() as stop:
        step_model.train()
        while progress.iter_num < s.max_iters and not s.eval_only:
            lr = lr_at(progress.iter_num)
            set_lr(optimizer, lr)  # every group: lr times its own peak over learning_rate
            poison = progress.iter_num == s.inject_nan_at_iter
            with out_of_memory_hint(s.batch_size, s.block_size, s.gradient_accumulation_steps, device):
                loss_sum = forward_backward(step_model, train_loader.next_batch, micro_steps, ctx, scaler, dist, poison)
            # the mean over every micro-step of every rank: the run's loss, and one decision for all ranks
            loss = distributed.sum_over_ranks([loss_sum.item()], dist, device)[0] / s.gradient_accumulation_steps
            grad_norm = optimizer_step(model, optimizer, scaler, s.grad_clip, guard, progress.iter_num, loss)
            progress.iter_num += 1
            progress.tokens_seen += s.tokens_per_iter

            evaluated = progress.iter_num % s.eval_interval == 0 or progress.iter_num == s.max_iters
            with rates.paused():  # ms/iter and tokens/s count training time only
                losses = evaluate() if evaluated else {}
            if progress.iter_num % s.log_interval == 0 or evaluated:
                lap = rates.lap()
                log.step(progress, loss, lr, grad_norm, lap, losses)  # and the alarms that first hold
                laps += 1
                if laps == 2:  # once, the first lap (compilation) behind it: the plan against the measurement
                    check = plan_check(
                        iter_num=progress.iter_num,
                        config=model.config,
                        settings=s,
                        dtype=dtype,
                        world_size=dist.world_size,
                        device_name=device_name(device),
                        measured=peak_memory(device),
                        measured_mfu=lap["mfu"],
                    )
                    log.plan_check(progress, check, *plan_check_lines(check))
            improved = bool(losses) and losses["val"] < progress.best_val_loss
            if improved:
                progress.best_val_loss = losses["val"]
            reason = f"{stop.requested} received" if stop.requested else log.stop_reason  # a signal, early_stop
            if distributed.any_rank(reason is not None, dist, device):  # all ranks stop together
                reason = reason or "a signal to another rank received"
                interrupted = reason != log.stop_reason  # a signal, not early_stop: the run is not finished
                checkpoints.save(model, optimizer, scaler, progress, train_loader, reason)
                log.stopped(progress.iter_num, s.out_dir)
                break
            last = progress.iter_num == s.max_iters
            if hellaswag_items and (progress.iter_num % s.hellaswag_interval == 0 or last):
                with rates.paused():  # the plain model: compiled, every item length would recompile
                    log.hellaswag(progress, hellaswag.evaluate(model, hellaswag_items, ctx, device, dist))
            due = progress.iter_num % (s.ckpt_interval or s.eval_interval) == 0 or last
            if due and (s.always_save_checkpoint or improved):
                checkpoints.save(model, optimizer, scaler, progress, train_loader, "final" if last else "periodic")
    if not s.eval_only:
        log.summary(progress, rates.clock() - rates.run_start, checkpoints.last_path, finished=not interrupted)
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
