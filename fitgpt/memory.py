"""
The memory model: what one training step holds at its peak on one GPU, allocated and reserved,
counted tensor by tensor from a GPTConfig and the step (micro-batch, precision, compile, the
training choices, FSDP shards, optimizer); the memory a GPU leaves a run; the largest micro-batch
that fits, and the micro-batch and accumulation that keep the tokens per step. Torch-free: plan.py,
train.py's start-up plan and bench.py all ask it.
"""

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from fitgpt.architecture import GPTConfig
from fitgpt.flops import checkpointed_layers, layer_matmul_weights, matmul_weights, param_count
from fitgpt.formatting import GIB

if TYPE_CHECKING:
    from fitgpt.hardware import Device

# What one training step holds at its peak, on one GPU, in bytes, counted tensor by tensor:
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


def head_saved(config: GPTConfig, dtype: str, loss_chunks: int = 0) -> int:
    """Bytes per token kept by the embedding, final norm, output layer and loss in eager mode: token
    ids and targets, the norm, lm_head's input, and the fp32 log-softmax over the real vocabulary.
    With loss_chunks the log-softmax is remade in backward and lm_head's input is kept as it is
    (fp32), its autocast copy made inside the chunk."""
    if loss_chunks > 1:
        return 16 + norm_saved(config, config.n_embd) + 4 * config.n_embd
    return 16 + norm_saved(config, config.n_embd) + ACTIVATION_BYTES[dtype] * config.n_embd + 4 * config.vocab_size


def compiled_head_saved(config: GPTConfig, dtype: str, last_block_remade: bool = False, loss_chunks: int = 0) -> int:
    """Bytes per token the head keeps under torch.compile (the partitioner's count): the logits at
    the activation precision (not the fp32 log-softmax: the fused loss remakes it), with logit
    soft-capping their fp32 tanh too, the final norm's fp32 input and lm_head's input; with
    loss_chunks only lm_head's fp32 input. When the last block is checkpointed the final norm's
    input is not kept (that block remakes it)."""
    a, c, v = ACTIVATION_BYTES[dtype], config.n_embd, config.vocab_size
    if loss_chunks > 1:
        return 4 * c + 4
    if last_block_remade:
        return a * v + a * c + 24
    # lm_head's input is kept as cast, but for RoPE models under bf16/fp16 (there the partitioner
    # remakes it from the norm's output)
    saved = a * v + 4 * c + (a * c + 20 if config.pos_emb == "learned" or a == 4 else 28)
    return saved + (4 * v + 48 if config.logit_softcap else 0)


def loss_buffers(config: GPTConfig, compile: bool = False, loss_chunks: int = 0) -> float:
    """Bytes per token the loss needs beyond what is saved, at the start of backward. Eager: the
    gradient of the fp32 logits and of the log-softmax (two vocabulary-wide fp32 buffers);
    chunked, one chunk's worth of those and of its remade log-softmax, spread over every token.
    Compiled: one fp32 vocabulary-wide buffer, chunked or not (measured on an H200: the peak less
    the saved tensors is exactly that in all six compiled cases; with soft-capping, unmeasured,
    twice that)."""
    if compile:
        return 4 * config.vocab_size * (2 if config.logit_softcap else 1)
    if loss_chunks > 1:
        return 12 * config.vocab_size / loss_chunks
    return 8 * config.vocab_size


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


def bf16_copied_weights(config: GPTConfig, checkpointed: int = 0, loss_chunks: int = 0) -> int:
    """Weights whose bf16 casts are kept for backward (autocast's cache in eager mode, the compiled
    graph's saved casts): every matmul's, but the output layer's with loss_chunks (each chunk
    casts its own) and the `checkpointed` blocks' (cast again when they are remade)."""
    head = config.padded_vocab_size * config.n_embd if loss_chunks > 1 else 0
    return matmul_weights(config) - head - checkpointed * layer_matmul_weights(config)


@dataclass(frozen=True)
class Step:
    """One training step on one GPU as the memory model sees it: the micro-batch, the precision,
    compiled or not, the training choices (activation checkpointing, loss chunks), the micro-steps
    this GPU runs per optimizer step, the ranks FSDP shards the model state over, the optimizer."""

    batch_size: int
    dtype: str = "bf16"
    compile: bool = True
    activation_checkpointing: int = 0
    loss_chunks: int = 0
    micro_steps: int = 1
    shards: int = 1
    optimizer: str = "adamw"

    @classmethod
    def of(cls, s, dtype: str, world_size: int = 1) -> "Step":
        """The step of a run with these settings (TrainSettings or BenchSettings) on each of its
        world_size GPUs."""
        return cls(
            s.batch_size,
            dtype=dtype,
            compile=s.compile,
            activation_checkpointing=s.activation_checkpointing,
            loss_chunks=s.loss_chunks,
            micro_steps=max(1, s.gradient_accumulation_steps // world_size),
            shards=world_size if s.parallelism == "fsdp" else 1,
            optimizer=s.optimizer,
        )


def training_memory(config: GPTConfig, step: Step) -> MemoryEstimate:
    """Peak memory of a training step: fp32 weights, gradients and the optimizer's state (divided
    over step.shards ranks under FSDP), the bf16 weight copies (autocast's, or those the compiled
    graph keeps), the activations the blocks keep for backward, the head's with the loss's
    backward buffers, and a fixed overhead.

    Phases: at the start of backward everything saved is alive, plus the loss gradient's
    vocabulary-wide buffers, and the gradients only if an earlier micro-step made them (none
    with one micro-step: on the H200 the peak held no gradient); while a checkpointed block is
    remade, its whole activations with (at most) every gradient; at the end of backward and in the
    optimizer step, weights, gradients and moments. The fused AdamW used on GPUs needs no
    parameter-sized temporaries (Muon's Newton-Schulz, one matrix's worth)."""
    dtype, compile, shards, every = step.dtype, step.compile, step.shards, step.activation_checkpointing
    n = param_count(config)
    weights, moments = 4 * n / shards, optimizer_state_bytes(config, step.optimizer) / shards
    grads = 4 * n / shards
    tokens = step.batch_size * config.block_size
    ckpt = checkpointed_layers(config.n_layer, every)
    copies = 2 * bf16_copied_weights(config, ckpt, step.loss_chunks) if ACTIVATION_BYTES[dtype] == 2 else 0
    if shards > 1:  # FSDP gathers the bf16 (or fp32) weights of about two blocks at a time, and the root's
        per_layer = (param_count(config) - config.padded_vocab_size * config.n_embd) / config.n_layer
        copies = ACTIVATION_BYTES[dtype] * (2 * per_layer + config.padded_vocab_size * config.n_embd)
    layer = compiled_layer_saved(config, dtype) if compile else layer_saved(config, dtype)
    layers = (config.n_layer - ckpt) * layer + ckpt * 4 * config.n_embd  # a checkpointed block keeps its fp32 input
    last_remade = ckpt > 0 and (config.n_layer - 1) % every == 0
    if compile:
        head = compiled_head_saved(config, dtype, last_remade, step.loss_chunks)
    else:
        head = head_saved(config, dtype, step.loss_chunks)
    head += loss_buffers(config, compile, step.loss_chunks)
    early_grads = grads if step.micro_steps > 1 else 0.0
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
    return training_memory(config, Step.of(s, dtype, world_size))


def usable_memory(memory_gib: float) -> float:
    """Bytes a run's reserved peak may take on a GPU of this capacity: less the CUDA context, and a
    margin for the model's error."""
    return (memory_gib * GIB - CONTEXT_RESERVE) * (1 - MARGIN)


def max_micro_batch(config: GPTConfig, device: "Device", step: Step, limit: int = 4096) -> int:
    """The largest micro-batch of this step whose predicted reserved peak fits the device (a
    hardware.Device: its memory, and the calibration its peaks are scaled by), at most limit (0: not
    even one sequence)."""
    usable = usable_memory(device.memory_gib)

    def fits(b):
        return device.peaks(training_memory(config, replace(step, batch_size=b)))[1] <= usable

    if not fits(1):
        return 0
    low, high = 1, limit
    while low < high:  # the peak grows with the micro-batch: bisect for the last one that fits
        mid = (low + high + 1) // 2
        low, high = (mid, high) if fits(mid) else (low, mid - 1)
    return low


def rebatch(batch_size: int, gradient_accumulation_steps: int, micro_batch: int) -> tuple[int, int]:
    """(batch_size, gradient_accumulation_steps) that run micro_batch sequences at a time (one that
    fits, or half the one that did not) and keep the tokens per step: the accumulation grows as
    the micro-batch shrinks. train.py's out-of-memory advice, its start-up refusal and bench.py's
    largest micro-batch all re-batch through this."""
    return micro_batch, max(1, batch_size * gradient_accumulation_steps // micro_batch)
