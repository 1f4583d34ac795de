"""
The typed settings of every entry point: name, type, default, one-line help, allowed values and
bounds. configurator.py checks config files and --key=value overrides against them and prints
them for --help; plan.py and bench.py read train.py's settings here, without importing train.py.

train.py, sample.py and export.py still show their settings as plain globals at the top, the way
nanoGPT does; tests/test_layout.py checks that those globals and these defaults agree.
"""

import os
import re
from dataclasses import dataclass

from configurator import check_fields, setting
from fitgpt.architecture import CHOICES

FLOAT8_RECIPES = ("tensorwise", "rowwise")  # torchao's recipe names

HF_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "bf16", "fp16", "fp32")


def is_cuda_index(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"cuda:\d+", value) is not None


def is_existing_path(value: object) -> bool:
    return isinstance(value, str) and os.path.exists(value)


@dataclass
class TrainSettings:
    # output and checkpoints
    out_dir: str = setting("out", "folder for ckpt.pt and metrics.jsonl", required=True)
    eval_interval: int = setting(250, "evaluate every this many iterations", min=1)
    eval_iters: int = setting(20, "batches per split per evaluation", min=1)
    log_interval: int = setting(10, "print and log a training line every this many iterations", min=1)
    eval_only: bool = setting(False, "evaluate once and exit")
    ckpt_interval: int = setting(0, "write ckpt.pt every this many iterations; 0 means eval_interval", min=0)
    keep_last: int = setting(0, "also keep this many older checkpoints as ckpt_<iter>.pt", min=0)
    always_save_checkpoint: bool = setting(True, "False: a periodic save happens only when val loss improved")
    overwrite: bool = setting(
        False, "start a new run in an out_dir holding one: its files are moved to out_dir/replaced-<time>/"
    )
    init_from: str = setting(
        "scratch",
        "where the weights start",
        choices=("scratch", "resume", *HF_NAMES),
        accept=is_existing_path,
        accept_doc="or a local Hugging Face model folder, or a llama2.c .bin file (v0 or v1, e.g. stories15M.bin)",
    )
    wandb_log: bool = setting(False, "log metrics to Weights & Biases")
    wandb_project: str = setting("fitgpt", "wandb project")
    wandb_run_name: str = setting("run", "wandb run name")
    # alarms: each printed once, when it first holds, and recorded in metrics.jsonl (fitgpt/alarms.py)
    alarm_epochs: float = setting(
        1.0, "alarm when the run plans more epochs than this, and at each epoch boundary from there; 0: off", min=0.0
    )
    patience: int = setting(5, "plateau alarm: evaluations without a val loss improvement; 0: off", min=0)
    min_delta: float = setting(0.0, "an evaluation improves on the best val loss only by more than this", min=0.0)
    early_stop: bool = setting(False, "stop, saving a checkpoint, while the plateau alarm holds")
    overfit_evals: int = setting(
        3, "overfitting alarm: the val-train gap widened at this many evaluations in a row; 0: off", min=0
    )
    overfit_gap: float = setting(0.05, "... and by at least this much in all", min=0.0)
    rise_evals: int = setting(
        2, "alarm: val loss rose at this many evaluations in a row with lr above half its peak; 0: off", min=0
    )
    hellaswag_interval: int = setting(0, "score HellaSwag every this many iterations and at the end; 0: off", min=0)
    hellaswag_limit: int = setting(0, "score only the first N HellaSwag items during training; 0: all", min=0)
    hellaswag_file: str = setting("", "a local hellaswag_val.jsonl; empty: data/hellaswag/'s, downloaded once")
    # data
    dataset: str = setting("fineweb", "dataset folder name under data/")
    data_dir: str = setting("", "dataset folder; empty means data/<dataset>")
    data_order: str = setting(
        "random", "random windows (nanoGPT) or shards front to back (llm.c)", choices=("random", "sequential")
    )
    auto_prepare: bool = setting(False, "run data/<dataset>/prepare.py when the dataset is missing (small datasets)")
    gradient_accumulation_steps: int = setting(32, "micro-steps per optimizer step, summed over all ranks", min=1)
    batch_size: int = setting(16, "micro-batch size per rank", min=1)
    block_size: int = setting(1024, "context length in tokens", min=1)
    # model (GPTConfig in fitgpt/architecture.py)
    n_layer: int = setting(12, "transformer blocks", min=1)
    n_head: int = setting(12, "attention heads", min=1)
    n_embd: int = setting(768, "model width", min=1)
    n_kv_heads: int | None = setting(None, "key/value heads (grouped-query attention); None means n_head", min=1)
    vocab_size: int | None = setting(None, "None: the dataset's meta.json (GPT-2's 50257 without one)", min=1)
    vocab_multiple: int = setting(64, "pad the embedding and output layer to a multiple of this", min=1)
    dropout: float = setting(0.0, "dropout probability", min=0.0, max=0.99)
    bias: bool = setting(False, "biases in Linear and LayerNorm layers")
    pos_emb: str = setting("learned", "position encoding", choices=CHOICES["pos_emb"])
    rope_theta: float = setting(10000.0, "RoPE base", above=0.0)
    norm: str = setting("layernorm", "normalization layer", choices=CHOICES["norm"])
    norm_eps: float = setting(1e-5, "normalization epsilon", above=0.0)
    mlp: str = setting("gelu", "MLP type", choices=CHOICES["mlp"])
    mlp_hidden: int | None = setting(
        None, "MLP hidden size; None: 4*n_embd (gelu, relu2) or llama's rule (swiglu)", min=1
    )
    multiple_of: int = setting(256, "swiglu hidden size is rounded up to this", min=1)
    tie_embeddings: bool = setting(True, "share the token embedding with the output layer")
    qk_norm: bool = setting(False, "RMSNorm on each head's query and key")
    logit_softcap: float = setting(0.0, "bound the logits to +-this: cap * tanh(logits / cap); 0: off", min=0.0)
    zero_init_proj: bool = setting(False, "start the attention and MLP output projections at zero")
    activation_checkpointing: int = setting(
        0, "recompute every k-th block's activations in backward (0 off, 1 all): less memory, ~1/3 more compute", min=0
    )
    loss_chunks: int = setting(
        0, "output layer and loss in this many chunks, logits remade in backward: no whole fp32 logits (0 off)", min=0
    )
    # the optimizer (fitgpt/optim.py); Muon's defaults are nanochat's (lr 0.02, Nesterov momentum 0.95, no decay)
    optimizer: str = setting(
        "adamw",
        "adamw: AdamW for all; muon: Muon for the blocks' matrices, AdamW for the rest",
        choices=("adamw", "muon"),
    )
    muon_lr: float = setting(0.02, "optimizer='muon': peak learning rate of the blocks' matrices", min=0.0)
    muon_momentum: float = setting(0.95, "optimizer='muon': Muon's (Nesterov) momentum", min=0.0, max=0.9999)
    muon_weight_decay: float = setting(0.0, "optimizer='muon': decoupled weight decay of the blocks' matrices", min=0.0)
    embedding_lr: float | None = setting(
        None, "optimizer='muon': AdamW's peak lr for the embeddings (and a tied head); None: learning_rate", min=0.0
    )
    head_lr: float | None = setting(
        None, "optimizer='muon': AdamW's peak lr for an untied output layer; None: learning_rate", min=0.0
    )
    # AdamW and the learning-rate schedule
    learning_rate: float = setting(6e-4, "peak learning rate", min=0.0)
    max_iters: int = setting(19073, "optimizer steps in all (19073 x 524,288 tokens = 10B tokens)", min=0)
    weight_decay: float = setting(0.1, "AdamW weight decay on matrices", min=0.0)
    beta1: float = setting(0.9, "AdamW beta1", min=0.0, max=0.9999)
    beta2: float = setting(0.95, "AdamW beta2", min=0.0, max=0.9999)
    grad_clip: float = setting(1.0, "clip the gradient norm to this; 0 disables clipping", min=0.0)
    decay_lr: bool = setting(True, "warmup then decay (lr_schedule); False keeps learning_rate")
    lr_schedule: str = setting(
        "cosine",
        "the decay: cosine, linear, or wsd (held at the peak, then linear)",
        choices=("cosine", "wsd", "linear"),
    )
    decay_frac: float = setting(0.2, "wsd: decay over this last fraction of lr_decay_iters", above=0.0, max=1.0)
    warmup_iters: int = setting(700, "linear warmup steps", min=0)
    lr_decay_iters: int = setting(19073, "the cosine reaches min_lr here; usually max_iters", min=0)
    min_lr: float = setting(6e-5, "final learning rate; usually learning_rate / 10", min=0.0)
    # system
    device: str = setting("auto", "where to train", choices=DEVICES, accept=is_cuda_index, accept_doc="or cuda:N")
    dtype: str = setting("auto", "auto: bf16 where supported, else fp16 on GPUs, fp32 on CPU", choices=DTYPES)
    compile: bool = setting(True, "torch.compile the model")
    compile_mode: str = setting(
        "default",
        "torch.compile's mode (reduce-overhead: CUDA graphs, for small models)",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    )
    float8: bool = setting(False, "float8 matmuls in the blocks' linear layers (torchao; H100-class GPUs)")
    float8_recipe: str = setting(
        "tensorwise", "float8 scaling: one scale per tensor, or per row", choices=FLOAT8_RECIPES
    )
    seed: int = setting(1337, "random seed (each rank adds its rank)")
    peak_flops: float = setting(0.0, "accelerator peak FLOP/s for MFU; 0 looks the GPU up", min=0.0)
    backend: str = setting("nccl", "torch.distributed backend under torchrun on GPUs", choices=("nccl", "gloo"))
    parallelism: str = setting(
        "ddp", "under torchrun: ddp (replicas) or fsdp (FSDP2: weights and optimizer sharded)", choices=("ddp", "fsdp")
    )
    memory_check: str = setting(
        "refuse",
        "at start: refuse a run whose predicted reserved peak exceeds the GPU's free memory, warn, or off",
        choices=("refuse", "warn", "off"),
    )
    dist_timeout: float = setting(600.0, "seconds a collective waits for the other ranks before failing", above=0.0)
    # faults
    on_nonfinite: str = setting(
        "stop", "NaN/Inf loss or gradient: exit non-zero, or skip the batch", choices=("stop", "skip")
    )
    max_skipped_in_a_row: int = setting(10, "with 'skip': stop after this many non-finite batches in a row", min=1)
    inject_nan_at_iter: int = setting(-1, "testing hook: poison the loss of this iteration")

    def __post_init__(self):
        check_fields(self)

    @property
    def tokens_per_iter(self) -> int:
        """Tokens per optimizer step, over all ranks."""
        return self.gradient_accumulation_steps * self.batch_size * self.block_size


@dataclass
class BenchSettings(TrainSettings):
    bench_steps: int = setting(10, "timed optimizer steps", min=1)
    bench_warmup: int = setting(2, "untimed steps first (compilation, allocator warm-up)", min=0)
    real_data: bool = setting(False, "read batches from the dataset instead of random tokens")
    matmul: bool = setting(False, "also measure dense matmul TFLOP/s per precision: MFU against that ceiling too")
    find_batch_size: bool = setting(False, "find the largest micro-batch that trains (a GPU), then time it")
    batch_margin: float = setting(
        0.05, "find_batch_size: keep this fraction of the GPU's memory free", min=0.0, max=0.5
    )
    profile: bool = setting(False, "profile the timed steps: a trace in profile_dir, time by kernel group")
    profile_dir: str = setting("bench-profile", "where --profile writes trace.json")
    json: bool = setting(False, "print the results as JSON")
    compare: str = setting("", "an earlier --json result: print this run's ratios against it")
    suite: bool = setting(False, "the GPU suite: memory, speed and options over ~8 shapes against plan.py's figures")
    calibrate: bool = setting(False, "a 2-3 minute subset of the suite that writes this GPU's calibration file")
    nanogpt: str = setting("", "suite: a nanoGPT checkout, to time its training step beside fitgpt's")
    suite_out: str = setting("bench-suite", "suite: where suite.json, suite.md and the per-case logs go")
    suite_budget: float = setting(480.0, "suite: seconds it may take; cases that would not fit are skipped", above=0.0)
    suite_resume: bool = setting(False, "suite: keep the cases suite_out/suite.json measured; run the rest")
    suite_report: str = setting("", "re-render a suite.json's table against the current memory model and exit")
    calibration_dir: str = setting("", "calibrate: the folder it writes to; empty: calibration/ beside bench.py")


@dataclass
class SampleSettings:
    out_dir: str = setting("out", "folder holding ckpt.pt", required=True)
    init_from: str = setting("", "a llama2.c .bin file (v0 or v1, e.g. stories15M.bin) to sample instead of ckpt.pt")
    tokenizer: str = setting("", "with init_from: llama2.c's tokenizer.model, or a dataset folder")
    start: str = setting("\n", "prompt text, or FILE:path to read it from a file")
    num_samples: int = setting(3, "samples to draw", min=1)
    max_new_tokens: int = setting(500, "tokens to generate per sample", min=1)
    temperature: float = setting(0.8, "1 samples the model's distribution, < 1 sharpens it, 0 is greedy", min=0.0)
    top_k: int | None = setting(200, "keep only the k most likely tokens; None keeps all", min=1)
    top_p: float | None = setting(None, "keep the smallest set of tokens reaching this probability", above=0.0, max=1.0)
    stop_at_eot: bool = setting(False, "end a sample at the end-of-text token")
    kv_cache: bool = setting(True, "reuse past keys/values: each new token costs one position")
    seed: int = setting(1337, "random seed")
    device: str = setting("auto", "where to sample", choices=DEVICES, accept=is_cuda_index, accept_doc="or cuda:N")
    dtype: str = setting("auto", "auto: bf16 where supported, fp32 on CPU", choices=DTYPES)

    def __post_init__(self):
        check_fields(self)


@dataclass
class EvaluateSettings:
    out_dir: str = setting("out", "folder holding ckpt.pt; the result is added to its metrics.jsonl", required=True)
    init_from: str = setting(
        "",
        "empty: out_dir's checkpoint",
        choices=("", *HF_NAMES),
        accept=is_existing_path,
        accept_doc="or a local Hugging Face model folder (GPT-2 tokens)",
    )
    task: str = setting("hellaswag", "the benchmark", choices=("hellaswag",))
    limit: int = setting(0, "score only the first N items; 0: all (10,042)", min=0)
    hellaswag_file: str = setting("", "a local hellaswag_val.jsonl; empty: data/hellaswag/'s, downloaded once")
    batch_items: int = setting(8, "items per forward pass (4 rows each)", min=1)
    device: str = setting("auto", "where to evaluate", choices=DEVICES, accept=is_cuda_index, accept_doc="or cuda:N")
    dtype: str = setting("auto", "auto: bf16 where supported, fp32 on CPU", choices=DTYPES)
    backend: str = setting("nccl", "torch.distributed backend under torchrun on GPUs", choices=("nccl", "gloo"))

    def __post_init__(self):
        check_fields(self)


@dataclass
class ExportSettings:
    out_dir: str = setting("out", "folder holding ckpt.pt", required=True)
    hf_dir: str = setting("", "where to write the Hugging Face folder; empty means out_dir/hf")
    llama2c: str = setting("", "write llama2.c's model.bin (v0, for run.c) and tokenizer.bin here, not a HF folder")
    overwrite: bool = setting(False, "replace the files of an earlier export in hf_dir (or llama2c's files)")

    def __post_init__(self):
        check_fields(self)
