"""
The typed settings of every entry point: name, type, one-line help, allowed values, bounds, and
the rules that involve two settings. configurator.py checks config files and --key=value
overrides against them and prints them for --help; plan.py, bench.py and sweep.py read train.py's
settings here, without importing train.py.

Each default is written once. train.py, sample.py, export.py and evaluate.py show their settings
as plain globals at the top, the way nanoGPT does, and those globals are the defaults here:
configurator.defaults_from reads them from the file (never running it). bench.py's own settings
have no such globals and keep their defaults below.

Every rule is checked when settings are made (parsed, merged on resume, replaced): one field at
a time by check_fields, then check_rules for those involving two or more, so that a run never
fails on them mid-way. What only the run can know (the device behind 'auto', the world size
under torchrun) is checked there.
"""

import os
import re
from dataclasses import dataclass

from configurator import check_fields, defaults_from, setting
from fitgpt.architecture import CHOICES, GPTConfig
from fitgpt.errors import ConfigError

FLOAT8_RECIPES = ("tensorwise", "rowwise")  # torchao's recipe names

HF_NAMES = ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")
DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "bf16", "fp16", "fp32")


def is_cuda_index(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"cuda:\d+", value) is not None


def is_existing_path(value: object) -> bool:
    return isinstance(value, str) and os.path.exists(value)


@dataclass
@defaults_from("train.py")
class TrainSettings:
    # output and checkpoints
    out_dir: str = setting("folder for ckpt.pt and metrics.jsonl", required=True)
    eval_interval: int = setting("evaluate every this many iterations", min=1)
    eval_iters: int = setting("batches per split per evaluation", min=1)
    log_interval: int = setting("print and log a training line every this many iterations", min=1)
    eval_only: bool = setting("evaluate once and exit")
    ckpt_interval: int = setting("write ckpt.pt every this many iterations; 0 means eval_interval", min=0)
    keep_last: int = setting("also keep this many older checkpoints as ckpt_<iter>.pt", min=0)
    always_save_checkpoint: bool = setting("False: a periodic save happens only when val loss improved")
    overwrite: bool = setting(
        "start a new run in an out_dir holding one: its files are moved to out_dir/replaced-<time>/"
    )
    init_from: str = setting(
        "where the weights start",
        choices=("scratch", "resume", *HF_NAMES),
        accept=is_existing_path,
        accept_doc="or a local Hugging Face model folder, or a llama2.c .bin file (v0 or v1, e.g. stories15M.bin)",
    )
    wandb_log: bool = setting("log metrics to Weights & Biases")
    wandb_project: str = setting("wandb project")
    wandb_run_name: str = setting("wandb run name")
    # alarms: each printed once, when it first holds, and recorded in metrics.jsonl (fitgpt/alarms.py)
    alarm_epochs: float = setting(
        "alarm when the run plans more epochs than this, and at each epoch boundary from there; 0: off", min=0.0
    )
    patience: int = setting("plateau alarm: evaluations without a val loss improvement; 0: off", min=0)
    min_delta: float = setting("an evaluation improves on the best val loss only by more than this", min=0.0)
    early_stop: bool = setting("stop, saving a checkpoint, while the plateau alarm holds")
    overfit_evals: int = setting(
        "overfitting alarm: the val-train gap widened at this many evaluations in a row; 0: off", min=0
    )
    overfit_gap: float = setting("... and by at least this much in all", min=0.0)
    rise_evals: int = setting(
        "alarm: val loss rose at this many evaluations in a row with lr above half its peak; 0: off", min=0
    )
    hellaswag_interval: int = setting("score HellaSwag every this many iterations and at the end; 0: off", min=0)
    hellaswag_limit: int = setting("score only the first N HellaSwag items during training; 0: all", min=0)
    hellaswag_file: str = setting("a local hellaswag_val.jsonl; empty: data/hellaswag/'s, downloaded once")
    # data
    dataset: str = setting("dataset folder name under data/")
    data_dir: str = setting("dataset folder; empty means data/<dataset>")
    data_order: str = setting(
        "random windows (nanoGPT) or shards front to back (llm.c)", choices=("random", "sequential")
    )
    auto_prepare: bool = setting("run data/<dataset>/prepare.py when the dataset is missing (small datasets)")
    gradient_accumulation_steps: int = setting("micro-steps per optimizer step, summed over all ranks", min=1)
    batch_size: int = setting("micro-batch size per rank", min=1)
    block_size: int = setting("context length in tokens", min=1)
    # model (GPTConfig in fitgpt/architecture.py)
    n_layer: int = setting("transformer blocks", min=1)
    n_head: int = setting("attention heads", min=1)
    n_embd: int = setting("model width", min=1)
    n_kv_heads: int | None = setting("key/value heads (grouped-query attention); None means n_head", min=1)
    vocab_size: int | None = setting("None: the dataset's meta.json (GPT-2's 50257 without one)", min=1)
    vocab_multiple: int = setting("pad the embedding and output layer to a multiple of this", min=1)
    dropout: float = setting("dropout probability", min=0.0, max=0.99)
    bias: bool = setting("biases in Linear and LayerNorm layers")
    pos_emb: str = setting("position encoding", choices=CHOICES["pos_emb"])
    rope_theta: float = setting("RoPE base", above=0.0)
    norm: str = setting("normalization layer", choices=CHOICES["norm"])
    norm_eps: float = setting("normalization epsilon", above=0.0)
    mlp: str = setting("MLP type", choices=CHOICES["mlp"])
    mlp_hidden: int | None = setting("MLP hidden size; None: 4*n_embd (gelu, relu2) or llama's rule (swiglu)", min=1)
    multiple_of: int = setting("swiglu hidden size is rounded up to this", min=1)
    tie_embeddings: bool = setting("share the token embedding with the output layer")
    qk_norm: bool = setting("RMSNorm on each head's query and key")
    logit_softcap: float = setting("bound the logits to +-this: cap * tanh(logits / cap); 0: off", min=0.0)
    zero_init_proj: bool = setting("start the attention and MLP output projections at zero")
    activation_checkpointing: int = setting(
        "recompute every k-th block's activations in backward (0 off, 1 all): less memory, ~1/3 more compute", min=0
    )
    loss_chunks: int = setting(
        "output layer and loss in this many chunks, logits remade in backward: no whole fp32 logits (0 off)", min=0
    )
    # the optimizer (fitgpt/optim.py); Muon's defaults are nanochat's (lr 0.02, Nesterov momentum 0.95, no decay)
    optimizer: str = setting(
        "adamw: AdamW for all; muon: Muon for the blocks' matrices, AdamW for the rest", choices=("adamw", "muon")
    )
    muon_lr: float = setting("optimizer='muon': peak learning rate of the blocks' matrices", min=0.0)
    muon_momentum: float = setting("optimizer='muon': Muon's (Nesterov) momentum", min=0.0, max=0.9999)
    muon_weight_decay: float = setting("optimizer='muon': decoupled weight decay of the blocks' matrices", min=0.0)
    embedding_lr: float | None = setting(
        "optimizer='muon': AdamW's peak lr for the embeddings (and a tied head); None: learning_rate", min=0.0
    )
    head_lr: float | None = setting(
        "optimizer='muon': AdamW's peak lr for an untied output layer; None: learning_rate", min=0.0
    )
    # AdamW and the learning-rate schedule
    learning_rate: float = setting("peak learning rate", min=0.0)
    max_iters: int = setting("optimizer steps in all (19073 x 524,288 tokens = 10B tokens)", min=0)
    weight_decay: float = setting("AdamW weight decay on matrices", min=0.0)
    beta1: float = setting("AdamW beta1", min=0.0, max=0.9999)
    beta2: float = setting("AdamW beta2", min=0.0, max=0.9999)
    grad_clip: float = setting("clip the gradient norm to this; 0 disables clipping", min=0.0)
    decay_lr: bool = setting("warmup then decay (lr_schedule); False keeps learning_rate")
    lr_schedule: str = setting(
        "the decay: cosine, linear, or wsd (held at the peak, then linear)", choices=("cosine", "wsd", "linear")
    )
    decay_frac: float = setting("wsd: decay over this last fraction of lr_decay_iters", above=0.0, max=1.0)
    warmup_iters: int = setting("linear warmup steps", min=0)
    lr_decay_iters: int = setting("the cosine reaches min_lr here; usually max_iters", min=0)
    min_lr: float = setting("final learning rate; usually learning_rate / 10", min=0.0)
    # system
    device: str = setting("where to train", choices=DEVICES, accept=is_cuda_index, accept_doc="or cuda:N")
    dtype: str = setting("auto: bf16 where supported, else fp16 on GPUs, fp32 on CPU", choices=DTYPES)
    compile: bool = setting("torch.compile the model")
    compile_mode: str = setting(
        "torch.compile's mode (reduce-overhead: CUDA graphs, for small models)",
        choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
    )
    float8: bool = setting("float8 matmuls in the blocks' linear layers (torchao; H100-class GPUs)")
    float8_recipe: str = setting("float8 scaling: one scale per tensor, or per row", choices=FLOAT8_RECIPES)
    seed: int = setting("random seed (each rank adds its rank)")
    peak_flops: float = setting("accelerator peak FLOP/s for MFU; 0 looks the GPU up", min=0.0)
    backend: str = setting("torch.distributed backend under torchrun on GPUs", choices=("nccl", "gloo"))
    parallelism: str = setting(
        "under torchrun: ddp (replicas) or fsdp (FSDP2: weights and optimizer sharded)", choices=("ddp", "fsdp")
    )
    memory_check: str = setting(
        "at start: refuse a run whose predicted reserved peak exceeds the GPU's free memory, warn, or off",
        choices=("refuse", "warn", "off"),
    )
    dist_timeout: float = setting("seconds a collective waits for the other ranks before failing", above=0.0)
    # faults
    on_nonfinite: str = setting("NaN/Inf loss or gradient: exit non-zero, or skip the batch", choices=("stop", "skip"))
    max_skipped_in_a_row: int = setting("with 'skip': stop after this many non-finite batches in a row", min=1)
    inject_nan_at_iter: int = setting("testing hook: poison the loss of this iteration")

    def __post_init__(self):
        check_fields(self)
        self.check_rules()

    def check_rules(self) -> None:
        """The rules that involve two settings or more, each refused in one line naming them."""
        if self.overwrite and self.init_from == "resume":
            raise ConfigError("overwrite=True starts a new run and init_from='resume' continues one; drop one of them")
        if self.parallelism == "fsdp" and self.dtype == "fp16":
            raise ConfigError("parallelism='fsdp' trains in bf16 or fp32 here, not fp16; set dtype='bf16'")
        if self.parallelism == "fsdp" and self.optimizer == "muon":  # Newton-Schulz needs whole matrices
            raise ConfigError(
                "optimizer='muon' does not run on FSDP-sharded weights; set parallelism='ddp' or optimizer='adamw'"
            )
        # the model's own rules (n_embd by n_head, n_head by n_kv_heads, rope's even head size);
        # none involves the vocabulary, which may come from the dataset later
        GPTConfig.from_settings(self, vocab_size=self.vocab_size or 1)

    @property
    def tokens_per_iter(self) -> int:
        """Tokens per optimizer step, over all ranks."""
        return self.gradient_accumulation_steps * self.batch_size * self.block_size


@dataclass
class BenchSettings(TrainSettings):
    bench_steps: int = setting("timed optimizer steps", default=10, min=1)
    bench_warmup: int = setting("untimed steps first (compilation, allocator warm-up)", default=2, min=0)
    real_data: bool = setting("read batches from the dataset instead of random tokens", default=False)
    matmul: bool = setting(
        "also measure dense matmul TFLOP/s per precision: MFU against that ceiling too", default=False
    )
    find_batch_size: bool = setting("find the largest micro-batch that trains (a GPU), then time it", default=False)
    batch_margin: float = setting(
        "find_batch_size: keep this fraction of the GPU's memory free", default=0.05, min=0.0, max=0.5
    )
    profile: bool = setting("profile the timed steps: a trace in profile_dir, time by kernel group", default=False)
    profile_dir: str = setting("where --profile writes trace.json", default="bench-profile")
    json: bool = setting("print the results as JSON", default=False)
    compare: str = setting("an earlier --json result: print this run's ratios against it", default="")
    suite: bool = setting(
        "the GPU suite: memory, speed and options over ~8 shapes against plan.py's figures", default=False
    )
    calibrate: bool = setting("a 2-3 minute subset of the suite that writes this GPU's calibration file", default=False)
    nanogpt: str = setting("suite: a nanoGPT checkout, to time its training step beside fitgpt's", default="")
    suite_out: str = setting("suite: where suite.json, suite.md and the per-case logs go", default="bench-suite")
    suite_budget: float = setting(
        "suite: seconds it may take; cases that would not fit are skipped", default=480.0, above=0.0
    )
    suite_resume: bool = setting("suite: keep the cases suite_out/suite.json measured; run the rest", default=False)
    suite_report: str = setting("re-render a suite.json's table against the current memory model and exit", default="")
    calibration_dir: str = setting(
        "calibrate: the folder it writes to; empty: calibration/ beside bench.py", default=""
    )


@dataclass
@defaults_from("sample.py")
class SampleSettings:
    out_dir: str = setting("folder holding ckpt.pt", required=True)
    init_from: str = setting("a llama2.c .bin file (v0 or v1, e.g. stories15M.bin) to sample instead of ckpt.pt")
    tokenizer: str = setting("with init_from: llama2.c's tokenizer.model, or a dataset folder")
    start: str = setting("prompt text, or FILE:path to read it from a file")
    num_samples: int = setting("samples to draw", min=1)
    max_new_tokens: int = setting("tokens to generate per sample", min=1)
    temperature: float = setting("1 samples the model's distribution, < 1 sharpens it, 0 is greedy", min=0.0)
    top_k: int | None = setting("keep only the k most likely tokens; None keeps all", min=1)
    top_p: float | None = setting("keep the smallest set of tokens reaching this probability", above=0.0, max=1.0)
    stop_at_eot: bool = setting("end a sample at the end-of-text token")
    kv_cache: bool = setting("reuse past keys/values: each new token costs one position")
    seed: int = setting("random seed")
    device: str = setting("where to sample", choices=DEVICES, accept=is_cuda_index, accept_doc="or cuda:N")
    dtype: str = setting("auto: bf16 where supported, fp32 on CPU", choices=DTYPES)

    def __post_init__(self):
        check_fields(self)
        self.check_rules()

    def check_rules(self) -> None:
        """The rules that involve two settings, each refused in one line naming them."""
        if self.init_from and not self.tokenizer:
            raise ConfigError(
                f"init_from={self.init_from} holds no tokenizer; pass --tokenizer=PATH, a SentencePiece .model file "
                f"(llama2.c's tokenizer.model for its stories*.bin) or a dataset folder holding meta.json"
            )


@dataclass
@defaults_from("evaluate.py")
class EvaluateSettings:
    out_dir: str = setting("folder holding ckpt.pt; the result is added to its metrics.jsonl", required=True)
    init_from: str = setting(
        "empty: out_dir's checkpoint",
        choices=("", *HF_NAMES),
        accept=is_existing_path,
        accept_doc="or a local Hugging Face model folder (GPT-2 tokens)",
    )
    task: str = setting("the benchmark", choices=("hellaswag",))
    limit: int = setting("score only the first N items; 0: all (10,042)", min=0)
    hellaswag_file: str = setting("a local hellaswag_val.jsonl; empty: data/hellaswag/'s, downloaded once")
    batch_items: int = setting("items per forward pass (4 rows each)", min=1)
    device: str = setting("where to evaluate", choices=DEVICES, accept=is_cuda_index, accept_doc="or cuda:N")
    dtype: str = setting("auto: bf16 where supported, fp32 on CPU", choices=DTYPES)
    backend: str = setting("torch.distributed backend under torchrun on GPUs", choices=("nccl", "gloo"))

    def __post_init__(self):
        check_fields(self)


@dataclass
@defaults_from("export.py")
class ExportSettings:
    out_dir: str = setting("folder holding ckpt.pt", required=True)
    hf_dir: str = setting("where to write the Hugging Face folder; empty means out_dir/hf")
    llama2c: str = setting("write llama2.c's model.bin (v0, for run.c) and tokenizer.bin here, not a HF folder")
    overwrite: bool = setting("replace the files of an earlier export in hf_dir (or llama2c's files)")

    def __post_init__(self):
        check_fields(self)
