"""
Parameters, FLOPs and MFU: counts of a GPTConfig (parameters by part, the weights every token's
matmuls use, training FLOPs per token), model FLOPs utilisation, and what activation checkpointing
recomputes. Pure arithmetic, torch-free: train.py, bench.py and plan.py take their figures here.
"""

from fitgpt.architecture import GPTConfig


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


def checkpointed_layers(n_layer: int, activation_checkpointing: int) -> int:
    """Blocks run under activation checkpointing: every k-th one (k = 1: all of them)."""
    return 0 if activation_checkpointing <= 0 else -(-n_layer // activation_checkpointing)


def recompute_factor(config: GPTConfig, activation_checkpointing: int) -> float:
    """Training time relative to no checkpointing: a checkpointed block runs its forward (a third
    of its training FLOPs) twice."""
    return 1 + checkpointed_layers(config.n_layer, activation_checkpointing) / config.n_layer / 3
