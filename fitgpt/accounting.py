"""
Parameter, FLOP and MFU arithmetic, and the table of GPUs: pure functions of a GPTConfig and
device facts. Nothing here allocates a tensor or imports torch, so plan.py answers in
milliseconds; train.py, bench.py and plan.py all take their figures from here.
"""

import re
from dataclasses import dataclass, field

from fitgpt.architecture import GPTConfig

GIB = 2**30


def matmul_precision(dtype: str, device: str) -> str:
    """The precision a training dtype's matmuls run in: fp32 runs them as TF32 on a GPU (runtime.py
    enables it), as true fp32 on a CPU."""
    return "tf32" if dtype == "fp32" and device.startswith("cuda") else dtype


def norm_params(config: GPTConfig, dim: int) -> int:
    """A LayerNorm has a gain and (with bias) a shift; an RMSNorm only a gain."""
    return 2 * dim if config.norm == "layernorm" and config.bias else dim


def layer_matmul_weights(config: GPTConfig) -> int:
    """Weights of one block's Linear layers (attention, then MLP)."""
    c, d = config.n_embd, config.head_dim
    attention = c * (config.n_head + 2 * config.n_kv_heads) * d + config.n_head * d * c
    mlp = (3 if config.mlp == "swiglu" else 2) * c * config.hidden_dim
    return attention + mlp


def param_breakdown(config: GPTConfig) -> dict[str, int]:
    """Parameters by part, each counted once (a tied output layer is the token embedding)."""
    c, d = config.n_embd, config.head_dim
    biases = 0
    if config.bias:
        biases = (
            (config.n_head + 2 * config.n_kv_heads) * d
            + c
            + config.hidden_dim * (2 if config.mlp == "swiglu" else 1)
            + c
        )
    per_layer = layer_matmul_weights(config) + biases + 2 * norm_params(config, c)
    per_layer += 2 * d if config.qk_norm else 0
    return {
        "token_embedding": config.padded_vocab_size * c,
        "position_embedding": config.block_size * c if config.pos_emb == "learned" else 0,
        "blocks": config.n_layer * per_layer,
        "final_norm": norm_params(config, c),
        "output_layer": 0 if config.tie_embeddings else config.padded_vocab_size * c,
    }


def param_count(config: GPTConfig, include_position_embeddings: bool = True) -> int:
    """The model's parameter count (the embedding's padding rows included, as llm.c counts)."""
    parts = param_breakdown(config)
    if not include_position_embeddings:
        parts.pop("position_embedding")
    return sum(parts.values())


def matmul_weights(config: GPTConfig) -> int:
    """Weights that take part in a matmul for every token: every block's Linear layers and the
    output layer (also when it shares the embedding's weights)."""
    return config.n_layer * layer_matmul_weights(config) + config.padded_vocab_size * config.n_embd


def flops_per_token(config: GPTConfig, seq_len: int | None = None) -> int:
    """Training FLOPs per token (forward + backward): 6 per matmul weight (2 forward, 4 backward),
    plus attention: QK^T and AV each cost 2*T*H*D forward, times 3 with backward = 12*T*H*D per
    layer (no discount for the causal mask, as PaLM's and nanoGPT's MFU count it)."""
    t = seq_len or config.block_size
    return 6 * matmul_weights(config) + 12 * config.n_layer * config.n_head * config.head_dim * t


def mfu(flops_per_token: float, tokens_per_s: float, peak_flops: float | None) -> float | None:
    """Model FLOPs utilisation of one device, or None when its peak is unknown."""
    if not peak_flops:
        return None
    return flops_per_token * tokens_per_s / peak_flops


# -----------------------------------------------------------------------------
# GPUs. Dense (no sparsity) datasheet peaks in TFLOP/s by precision; bf16/fp16 are with fp32
# accumulation, which is what PyTorch uses (GeForce cards run that at half their fp16-accumulate
# rate). memory_gib is the capacity torch reports as total memory.

# The model FLOPs utilisation plan.py and train.py expect of each GPU family (of the bf16 peak):
# measured where fitgpt has measured it, otherwise an assumption that names its source. Every
# answer that uses an assumed figure says so; plan.py --mfu overrides it.
MFU_BY_FAMILY = {
    "h100": (0.40, "measured: fitgpt on one H100 SXM, GPT-2 124M to 1.5B compiled, 39-43 % (docs/benchmarks.md)"),
    "hopper": (0.40, "assumed: the H100 SXM's measured 40 % (the same Hopper chip), not measured on this one"),
    "blackwell": (0.40, "assumed: fitgpt's H100 figure; not measured on Blackwell"),
    "a100": (
        0.30,
        "assumed: nanoGPT's GPT-2 124M, 300B tokens in about 4 days on 8 A100s, is about 30 % of 312 TFLOP/s",
    ),
    "ada": (
        0.40,
        "assumed for Ada GPUs: a nanoGPT user's GPT-2 124M ran at about 90 TFLOP/s on one RTX 4090 "
        "(55 % of its 165), taken lower",
    ),
    "ampere": (0.30, "assumed: as nanoGPT's A100 run (about 30 %); not measured on this card"),
    "cdna": (0.16, "assumed: a 2024 ROCm report put compiled GPT-2 XL training on one MI300X at about 16 % of peak"),
}


@dataclass(frozen=True)
class GPU:
    key: str  # the name plan.py --gpu takes
    name: str
    pattern: str  # regex matched against torch.cuda.get_device_name()
    memory_gib: float
    tflops: dict[str, float] = field(default_factory=dict)  # precision -> dense peak TFLOP/s
    family: str = "hopper"  # its MFU_BY_FAMILY entry

    def peak_flops(self, precision: str = "bf16") -> float | None:
        tflops = self.tflops.get(precision)
        return tflops * 1e12 if tflops else None

    @property
    def mfu(self) -> tuple[float, str]:
        """(the MFU expected of this GPU, where that figure comes from: 'measured: ...' or 'assumed: ...')."""
        return MFU_BY_FAMILY[self.family]


def _hopper(bf16: float, fp32: float) -> dict[str, float]:
    return {"bf16": bf16, "fp16": bf16, "tf32": bf16 / 2, "fp32": fp32, "fp8": 2 * bf16}


GPUS = [
    GPU("h100", "H100 SXM 80GB", r"H100 80GB HBM3|H100 SXM", 79.2, _hopper(989.4, 66.9), "h100"),
    GPU("h100-pcie", "H100 PCIe 80GB", r"H100 PCIe", 79.2, _hopper(756.0, 51.2)),
    GPU("h100-nvl", "H100 NVL 94GB", r"H100 NVL", 93.0, _hopper(835.5, 60.0)),
    GPU("h200", "H200 SXM 141GB", r"\bH200\b(?! NVL)", 139.8, _hopper(989.4, 66.9)),
    GPU("h200-nvl", "H200 NVL 141GB", r"H200 NVL", 139.8, _hopper(835.5, 60.0)),
    GPU("gh200", "GH200 96GB", r"GH200", 94.5, _hopper(989.4, 66.9)),
    GPU(
        "b200",
        "B200 180GB",
        r"\bB200\b",
        178.4,
        {"bf16": 2250, "fp16": 2250, "tf32": 1100, "fp32": 75, "fp8": 4500},
        "blackwell",
    ),
    GPU("a100-80", "A100 80GB", r"A100.*80GB", 79.2, {"bf16": 312, "fp16": 312, "tf32": 156, "fp32": 19.5}, "a100"),
    GPU("a100-40", "A100 40GB", r"A100(?!.*80GB)", 39.4, {"bf16": 312, "fp16": 312, "tf32": 156, "fp32": 19.5}, "a100"),
    GPU(
        "l40s",
        "L40S 48GB",
        r"L40S",
        44.4,
        {"bf16": 362.05, "fp16": 362.05, "tf32": 183.2, "fp32": 91.6, "fp8": 733},
        "ada",
    ),
    GPU("l4", "L4 24GB", r"\bL4\b", 22.0, {"bf16": 121, "fp16": 121, "tf32": 60, "fp32": 30.3, "fp8": 242.5}, "ada"),
    GPU(
        "a6000",
        "RTX A6000 48GB",
        r"RTX A6000",
        47.5,
        {"bf16": 154.8, "fp16": 154.8, "tf32": 77.4, "fp32": 38.7},
        "ampere",
    ),
    GPU(
        "rtx5090",
        "GeForce RTX 5090 32GB",
        r"RTX 5090$",
        31.4,
        {"bf16": 209.5, "fp16": 209.5, "tf32": 104.8, "fp32": 104.8, "fp8": 419},
        "blackwell",
    ),
    GPU(
        "rtx4090",
        "GeForce RTX 4090 24GB",
        r"RTX 4090$",
        23.6,
        {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6, "fp8": 330.3},
        "ada",
    ),
    GPU(
        "rtx4080",
        "GeForce RTX 4080 16GB",
        r"RTX 4080$",
        15.6,
        {"bf16": 97.5, "fp16": 97.5, "tf32": 48.7, "fp32": 48.7, "fp8": 194.9},
        "ada",
    ),
    GPU(
        "rtx4070",
        "GeForce RTX 4070 12GB",
        r"RTX 4070$",
        11.6,
        {"bf16": 58.3, "fp16": 58.3, "tf32": 29.1, "fp32": 29.1, "fp8": 116.6},
        "ada",
    ),
    GPU(
        "rtx3090",
        "GeForce RTX 3090 24GB",
        r"RTX 3090$",
        23.6,
        {"bf16": 71, "fp16": 71, "tf32": 35.6, "fp32": 35.6},
        "ampere",
    ),
    GPU(
        "mi300x",
        "Instinct MI300X 192GB",
        r"MI300X",
        191.5,
        {"bf16": 1307.4, "fp16": 1307.4, "tf32": 653.7, "fp32": 163.4, "fp8": 2614.9},
        "cdna",
    ),
    GPU(
        "mi325x",
        "Instinct MI325X 256GB",
        r"MI325X",
        255.5,
        {"bf16": 1307.4, "fp16": 1307.4, "tf32": 653.7, "fp32": 163.4, "fp8": 2614.9},
        "cdna",
    ),
    # torch sees each MI250X as two devices (one per die): figures are per die
    GPU(
        "mi250x",
        "Instinct MI250X (one of its two dies, 64GB)",
        r"MI250X",
        63.9,
        {"bf16": 191.5, "fp16": 191.5, "fp32": 47.9},
        "cdna",
    ),
]


def gpu_by_key(key: str) -> GPU | None:
    """The table entry plan.py's --gpu names (case-insensitive), or None."""
    key = key.lower()
    return next((g for g in GPUS if g.key == key), None)


def gpu_for_device_name(name: str) -> GPU | None:
    """The table entry for a name as torch reports it (e.g. 'NVIDIA H100 PCIe'), or None when the
    device is not listed: a near-miss (an H100 PCIe matched as an SXM) would misstate MFU by 30 %."""
    for gpu in GPUS:
        if re.search(gpu.pattern, name):
            return gpu
    return None


def peak_flops(device_name: str, precision: str = "bf16", override: float = 0.0) -> float | None:
    """Dense peak FLOP/s of a device for MFU: the override when set, else the table's, else None."""
    if override:
        return override
    gpu = gpu_for_device_name(device_name)
    return gpu.peak_flops(precision) if gpu else None


# -----------------------------------------------------------------------------
# Memory. What one training step holds at its peak, on one GPU, in bytes, counted tensor by tensor:
# - eager: the tensors autograd keeps for backward in model.py's blocks (SDPA attention, no
#   dropout); tests/test_memory.py counts them on CPU with saved_tensors_hooks and finds these
#   sums exactly (qk_norm: approximately);
# - torch.compile: the tensors AOTAutograd's min-cut partitioner keeps (fitgpt/partition.py counts
#   them on CPU under FakeTensorMode; tests/test_memory.py holds these formulas to that count);
# - the loss's backward buffers and the allocator's excess over the tensors, measured on an H200
#   (bench.py --suite, docs/benchmarks.md): the only fitted terms.
# docs/sizing.md compares the sums with the H200's peaks.

ACTIVATION_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}  # the matmuls' inputs and outputs under autocast


def norm_saved(config: GPTConfig, dim: int) -> int:
    """Bytes per token a norm layer keeps for backward on a GPU: its fp32 input and statistics
    (LayerNorm's mean and rstd, RMSNorm's rstd: CUDA's fused kernel; the CPU's composite RMSNorm
    keeps its normalized input as well, which tests/test_memory.py adds)."""
    return 4 * dim + (8 if config.norm == "layernorm" else 4)


def attention_saved(config: GPTConfig, a: int) -> int:
    """Bytes per token the attention keeps in eager mode (a: bytes per activation). SDPA keeps q,
    k, v; while one of them is still a view of the fused qkv output, that whole buffer stays alive."""
    h, k, d = config.n_head, config.n_kv_heads, config.head_dim
    changed = config.pos_emb == "rope" or config.qk_norm  # q and k are new tensors, not views
    qkv_alive = not changed or k == h or config.qk_norm  # v (or q, or the qk norms' inputs) views it
    saved = qkv_alive * (h + 2 * k) * d + changed * h * d
    if k < h:  # grouped-query: k and v repeated to every query head, as new tensors
        saved += 2 * h * d
    elif changed:
        saved += k * d
    saved *= a
    if config.qk_norm:  # the norms' fp32 normalized q and k with their rstd, measured on CPU (approximate)
        saved += 4 * ((h + k) * (d + 1) + h * d)
    return saved + 4 * h + a * h * d  # + the softmax's log-sum-exp (fp32) and the output, c_proj's input


def layer_saved(config: GPTConfig, dtype: str) -> int:
    """Bytes per token one block keeps for backward in eager mode."""
    a, c, hidden = ACTIVATION_BYTES[dtype], config.n_embd, config.hidden_dim
    saved = 2 * norm_saved(config, c) + a * c + attention_saved(config, a)  # + c_attn's input
    if config.mlp in ("gelu", "relu2"):
        return saved + a * c + 2 * a * hidden  # c_fc's input, the activation's input and output
    # c_gate and c_fc each cast the input under autocast; SiLU's input and output, c_fc's output
    # and c_proj's input are hidden-sized
    return saved + (2 if a == 2 else 1) * a * c + 4 * a * hidden


def compiled_layer_saved(config: GPTConfig, dtype: str) -> int:
    """Bytes per token one block keeps for backward under torch.compile, as the partitioner saves
    them: the fp32 residual stream into each norm and the norms' statistics, c_attn's and c_fc's
    inputs, q, k and v at every query head (grouped-query k and v repeated), SDPA's output as
    returned and as c_proj's input, its log-sum-exp, and the MLP's hidden tensors (2, SwiGLU 3).
    The eager block keeps the same but for the MLP and attention's views (layer_saved)."""
    a, c, hd = ACTIVATION_BYTES[dtype], config.n_embd, config.n_head * config.head_dim
    hidden_tensors = 3 if config.mlp == "swiglu" else 2
    saved = 2 * 4 * c + 8 + a * (2 * c + 5 * hd) + hidden_tensors * a * config.hidden_dim + 4 * config.n_head
    if config.qk_norm:  # the norms' fp32 statistics and one normalized fp32 copy
        saved += 4 * hd + 4 * (config.n_head + config.n_kv_heads)
    return saved


def head_saved(config: GPTConfig, dtype: str) -> int:
    """Bytes per token kept by the embedding, final norm, output layer and loss in eager mode: token
    ids and targets, the norm, lm_head's input, and the fp32 log-softmax over the real vocabulary.
    With loss_chunks the log-softmax is remade in backward and lm_head's input is kept as it is
    (fp32), its autocast copy made inside the chunk."""
    if chunked_loss(config):
        return 16 + norm_saved(config, config.n_embd) + 4 * config.n_embd
    return 16 + norm_saved(config, config.n_embd) + ACTIVATION_BYTES[dtype] * config.n_embd + 4 * config.vocab_size


def compiled_head_saved(config: GPTConfig, dtype: str, last_block_remade: bool = False) -> int:
    """Bytes per token the head keeps under torch.compile (the partitioner's count): the logits at
    the activation precision (not the fp32 log-softmax: the fused loss remakes it), with logit
    soft-capping their fp32 tanh too, the final norm's fp32 input and lm_head's input; with
    loss_chunks only lm_head's fp32 input. When the last block is checkpointed the final norm's
    input is not kept (that block remakes it)."""
    a, c, v = ACTIVATION_BYTES[dtype], config.n_embd, config.vocab_size
    if chunked_loss(config):
        return 4 * c + 4
    if last_block_remade:
        return a * v + a * c + 24
    # lm_head's input is kept as cast, but for RoPE models under bf16/fp16 (there the partitioner
    # remakes it from the norm's output)
    saved = a * v + 4 * c + (a * c + 20 if config.pos_emb == "learned" or a == 4 else 28)
    return saved + (4 * v + 48 if config.logit_softcap else 0)


def chunked_loss(config: GPTConfig) -> bool:
    return config.loss_chunks > 1


def loss_buffers(config: GPTConfig, compile: bool = False) -> float:
    """Bytes per token the loss needs beyond what is saved, at the start of backward. Eager: the
    gradient of the fp32 logits and of the log-softmax (two vocabulary-wide fp32 buffers);
    chunked, one chunk's worth of those and of its remade log-softmax, spread over every token.
    Compiled: one fp32 vocabulary-wide buffer, chunked or not (measured on an H200: the peak less
    the saved tensors is exactly that in all six compiled cases; with soft-capping, unmeasured,
    twice that)."""
    if compile:
        return 4 * config.vocab_size * (2 if config.logit_softcap else 1)
    if chunked_loss(config):
        return 12 * config.vocab_size / config.loss_chunks
    return 8 * config.vocab_size


def checkpointed_layers(n_layer: int, activation_checkpointing: int) -> int:
    """Blocks run under activation checkpointing: every k-th one (k = 1: all of them)."""
    return 0 if activation_checkpointing <= 0 else -(-n_layer // activation_checkpointing)


# Beyond the counted tensors: the weights, gradients and moments are counted exactly; cuBLAS's
# workspaces and the caching allocator's rounding were 0.06-0.2 GiB on an H200 (the allocated
# bytes with only weights and AdamW state alive, less those, bench.py --suite)
OVERHEAD = 0.25 * GIB
CONTEXT_RESERVE = 1.0 * GIB  # the CUDA context, outside torch's allocator but inside the GPU's memory
# The caching allocator reserves more than it has allocated: freed blocks kept for reuse, split
# and fragmented. On an H200 (bench.py --suite, 13 cases, torch 2.11) the excess was 2-7 % of the
# allocated peak, and up to 42 % where a few vocabulary-wide buffers (logits, their gradients)
# made most of it: a 30M model at micro-batch 32. Fitted to those 13 (docs/sizing.md): excess =
# predicted allocated x (FRAGMENTATION + VOCAB_FRAGMENTATION x share^4), share = the head's and
# loss's part of the predicted peak; within -2.9 % and +7.8 % of every measured reserved peak.
FRAGMENTATION = 0.045
VOCAB_FRAGMENTATION = 0.61
# kept free below the limit, for the reserved model's error (it was at most 3 % under on the H200)
MARGIN = 0.05


@dataclass
class MemoryEstimate:
    """The predicted peak of one training step on one GPU (torch.cuda.max_memory_allocated), by part."""

    weights: float
    gradients: float
    optimizer: float
    weight_copies: float
    activations: float
    logits: float
    overhead: float
    phase: str  # where the peak falls: 'backward' (its start), 'recompute' (a checkpointed block) or 'optimizer'

    @property
    def total(self) -> float:
        return (
            self.weights
            + self.gradients
            + self.optimizer
            + self.weight_copies
            + self.activations
            + self.logits
            + self.overhead
        )

    @property
    def reserved(self) -> float:
        """The predicted peak the caching allocator reserves (torch.cuda.max_memory_reserved):
        what must fit in the GPU's memory beside the CUDA context."""
        share = self.logits / self.total if self.total else 0.0
        return self.total * (1 + FRAGMENTATION + VOCAB_FRAGMENTATION * share**4)

    def breakdown_gib(self) -> dict[str, float]:
        parts = ("weights", "gradients", "optimizer", "weight_copies", "activations", "logits", "overhead")
        return {part: round(getattr(self, part) / GIB, 3) for part in parts}


def optimizer_state_bytes(config: GPTConfig, optimizer: str = "adamw") -> int:
    """fp32 optimizer state: AdamW keeps two moments per parameter; with 'muon' the blocks'
    matrices keep one momentum buffer each instead (the rest is still AdamW's)."""
    state = 8 * param_count(config)
    if optimizer == "muon":
        state -= 4 * config.n_layer * layer_matmul_weights(config)
    return state


def bf16_copied_weights(config: GPTConfig, checkpointed: int = 0) -> int:
    """Weights whose bf16 casts are kept for backward (autocast's cache in eager mode, the compiled
    graph's saved casts): every matmul's, but the output layer's with loss_chunks (each chunk
    casts its own) and the `checkpointed` blocks' (cast again when they are remade)."""
    head = config.padded_vocab_size * config.n_embd if chunked_loss(config) else 0
    return matmul_weights(config) - head - checkpointed * layer_matmul_weights(config)


def training_memory(
    config: GPTConfig,
    batch_size: int,
    dtype: str = "bf16",
    compile: bool = True,
    activation_checkpointing: int = 0,
    gradient_accumulation_steps: int = 1,
    shards: int = 1,
    optimizer: str = "adamw",
) -> MemoryEstimate:
    """Peak memory of a training step: fp32 weights, gradients and the optimizer's state (divided
    over `shards` ranks under FSDP), the bf16 weight copies (autocast's, or those the compiled
    graph keeps), the activations the blocks keep for backward, the head's with the loss's
    backward buffers, and a fixed overhead.

    Phases: at the start of backward everything saved is alive, plus the loss gradient's
    vocabulary-wide buffers, and the gradients only if an earlier micro-step made them (none
    with one micro-step: on the H200 the peak held no gradient); while a checkpointed block is
    remade, its whole activations with (at most) every gradient; at the end of backward and in the
    optimizer step, weights, gradients and moments. The fused AdamW used on GPUs needs no
    parameter-sized temporaries (Muon's Newton-Schulz, one matrix's worth)."""
    n = param_count(config)
    weights, moments = 4 * n / shards, optimizer_state_bytes(config, optimizer) / shards
    grads = 4 * n / shards
    tokens = batch_size * config.block_size
    ckpt = checkpointed_layers(config.n_layer, activation_checkpointing)
    copies = 2 * bf16_copied_weights(config, ckpt) if ACTIVATION_BYTES[dtype] == 2 else 0
    if shards > 1:  # FSDP gathers the bf16 (or fp32) weights of about two blocks at a time, and the root's
        per_layer = (param_count(config) - config.padded_vocab_size * config.n_embd) / config.n_layer
        copies = ACTIVATION_BYTES[dtype] * (2 * per_layer + config.padded_vocab_size * config.n_embd)
    layer = compiled_layer_saved(config, dtype) if compile else layer_saved(config, dtype)
    layers = (config.n_layer - ckpt) * layer + ckpt * 4 * config.n_embd  # a checkpointed block keeps its fp32 input
    last_remade = ckpt > 0 and (config.n_layer - 1) % activation_checkpointing == 0
    head = compiled_head_saved(config, dtype, last_remade) if compile else head_saved(config, dtype)
    head += loss_buffers(config, compile)
    early_grads = grads if gradient_accumulation_steps > 1 else 0.0
    start = weights + moments + early_grads + copies + tokens * (layers + head)
    remake = weights + moments + grads + copies + tokens * (layers + layer) if ckpt else 0.0
    end = weights + moments + grads
    if start >= max(remake, end):
        return MemoryEstimate(
            weights, early_grads, moments, copies, tokens * layers, tokens * head, OVERHEAD, "backward"
        )
    if remake >= end:
        return MemoryEstimate(weights, grads, moments, copies, tokens * (layers + layer), 0.0, OVERHEAD, "recompute")
    return MemoryEstimate(weights, grads, moments, 0.0, 0.0, 0.0, OVERHEAD, "optimizer")


def run_memory(config: GPTConfig, s, dtype: str, world_size: int = 1) -> MemoryEstimate:
    """The predicted peak of one step of a run with these settings (TrainSettings or BenchSettings)
    on each of world_size GPUs: what train.py's start-up plan, bench.py and plan.py all print."""
    return training_memory(
        config,
        s.batch_size,
        dtype=dtype,
        compile=s.compile,
        activation_checkpointing=s.activation_checkpointing,
        gradient_accumulation_steps=max(1, s.gradient_accumulation_steps // world_size),
        shards=world_size if s.parallelism == "fsdp" else 1,
        optimizer=s.optimizer,
    )


def usable_memory(memory_gib: float) -> float:
    """Bytes a run's reserved peak may take on a GPU of this capacity: less the CUDA context, and a
    margin for the model's error."""
    return (memory_gib * GIB - CONTEXT_RESERVE) * (1 - MARGIN)
