"""
The GPT model: one file, driven only by GPTConfig (fitgpt/architecture.py, kept free of torch
so that plan.py can size models without importing it; re-exported here).

The default config is the GPT-2 architecture (learned position embeddings,
LayerNorm, GELU MLP, tied input/output embeddings). Options turn it into a
Llama-style model: RoPE, RMSNorm, SwiGLU, grouped-query attention, QK-norm; and the
small-scale recipe options modded-nanogpt uses: ReLU² MLP, zero-initialized output projections,
logit soft-capping (with tie_embeddings=False, an untied head).
Shapes in comments use B = batch, T = time, C = n_embd, H = heads,
K = kv heads, D = head dim, V = vocab, Vp = V padded to a multiple of 64.
Parameter counts and FLOPs are computed from the config in fitgpt/flops.py, memory in fitgpt/memory.py.
"""

import math
from contextlib import contextmanager

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from fitgpt.architecture import GPTConfig

__all__ = ["GPT", "GPTConfig", "decode_layout", "sample_next"]


def make_norm(config, dim):
    if config.norm == "rmsnorm":
        return nn.RMSNorm(dim, eps=config.norm_eps)
    return nn.LayerNorm(dim, eps=config.norm_eps, bias=config.bias)


def rope_tables(head_dim, length, theta):
    """cos and sin tables, each (length, D), in the 'rotate half' layout Hugging Face Llama uses."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)  # (length, D/2)
    angles = torch.cat((angles, angles), dim=-1)  # (length, D)
    return angles.cos(), angles.sin()


def apply_rope(x, cos, sin):
    """x: (B, heads, T, D); cos, sin: (T, D). Rotates each (i, i + D/2) pair by its angle."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x * cos + rotated * sin).to(x.dtype)


class Linear(nn.Linear):
    """nn.Linear that, while sampling on CPU, multiplies by a copy of its weight stored (in, out).

    For one or a few rows x, CPU BLAS (MKL on an AMD EPYC, measured in docs/benchmarks.md) computes
    x @ W.T with W stored (out, in) about 3x slower than x @ W_t with W_t stored (in, out), and a
    KV-cached decoding step is mostly such products. The state dict is unchanged."""

    decode_weight = None  # (in, out) contiguous copy of weight; set only inside decode_layout()

    def forward(self, x):
        if self.decode_weight is None:
            return super().forward(x)
        y = x @ self.decode_weight
        return y if self.bias is None else y + self.bias


@contextmanager
def decode_layout(model):
    """Give every fp32 CPU Linear of model an (in, out) weight copy for the duration (see Linear).

    Costs one extra copy of those weights while active. Skipped under CPU autocast, whose cached
    bf16 weights are fast already (a detached copy would be re-cast every step); GPU matmuls are
    fast in either layout."""
    linears = []
    if not torch.is_autocast_enabled("cpu"):
        linears = [
            m
            for m in model.modules()
            if isinstance(m, Linear)
            and m.decode_weight is None
            and m.weight.device.type == "cpu"
            and m.weight.dtype == torch.float32
        ]
    for m in linears:
        m.decode_weight = m.weight.detach().t().contiguous()
    try:
        yield
    finally:
        for m in linears:
            m.decode_weight = None


class KVCache:
    """Keys and values of every layer for incremental decoding: (B, K, block_size, D) per layer."""

    def __init__(self, config, batch_size, device, dtype):
        shape = (batch_size, config.n_kv_heads, config.block_size, config.head_dim)
        self.keys = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.values = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(config.n_layer)]
        self.length = 0  # positions filled so far


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_kv_heads, self.head_dim = config.n_head, config.n_kv_heads, config.head_dim
        # one matmul for queries (H heads) and keys, values (K heads each)
        self.c_attn = Linear(config.n_embd, (self.n_head + 2 * self.n_kv_heads) * self.head_dim, bias=config.bias)
        self.c_proj = Linear(self.n_head * self.head_dim, config.n_embd, bias=config.bias)
        self.q_norm = nn.RMSNorm(self.head_dim, eps=config.norm_eps) if config.qk_norm else None
        self.k_norm = nn.RMSNorm(self.head_dim, eps=config.norm_eps) if config.qk_norm else None
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x, rope=None, cache=None, layer=0):
        B, T, _ = x.shape
        q, k, v = self.c_attn(x).split(
            [self.n_head * self.head_dim, self.n_kv_heads * self.head_dim, self.n_kv_heads * self.head_dim], dim=2
        )
        q = q.view(B, T, self.n_head, self.head_dim).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, K, T, D)
        v = v.view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B, K, T, D)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)

        start = 0
        if cache is not None:  # append this step's keys/values, then attend over everything cached
            start = cache.length
            cache.keys[layer][:, :, start : start + T] = k
            cache.values[layer][:, :, start : start + T] = v
            k, v = cache.keys[layer][:, :, : start + T], cache.values[layer][:, :, : start + T]
        if self.n_kv_heads != self.n_head:  # each kv head serves n_head/n_kv_heads query heads
            repeat = self.n_head // self.n_kv_heads
            k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)

        dropout = self.dropout if self.training else 0.0
        if start == 0:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        elif T == 1:  # one new token sees every cached position: no mask needed
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout)
        else:  # query i sits at position start+i and sees keys 0..start+i
            mask = (
                torch.arange(start + T, device=x.device)[None, :] <= (start + torch.arange(T, device=x.device))[:, None]
            )
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)
        y = y.transpose(1, 2).contiguous().view(B, T, self.n_head * self.head_dim)  # (B, T, H*D)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        hidden = config.hidden_dim
        self.swiglu, self.relu2 = config.mlp == "swiglu", config.mlp == "relu2"
        if self.swiglu:
            self.c_gate = Linear(config.n_embd, hidden, bias=config.bias)
        self.c_fc = Linear(config.n_embd, hidden, bias=config.bias)
        self.c_proj = Linear(hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        if self.swiglu:
            h = F.silu(self.c_gate(x)) * self.c_fc(x)
        elif self.relu2:
            h = F.relu(self.c_fc(x)).square()
        else:
            h = F.gelu(self.c_fc(x), approximate="tanh")  # GPT-2's tanh approximation
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = make_norm(config, config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = make_norm(config, config.n_embd)
        self.mlp = MLP(config)

    def forward(self, x, rope=None, cache=None, layer=0):
        x = x + self.attn(self.ln_1(x), rope, cache, layer)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig, activation_checkpointing: int = 0, loss_chunks: int = 0):
        """config: the shape. Two training choices, not part of the shape (a checkpoint does not
        keep them; a resumed run may change them), plain attributes train.py sets from its settings:
        activation_checkpointing (k > 0: while training, every k-th block keeps only its input and
        recomputes the rest in backward) and loss_chunks (n > 1: while training, the output layer and
        loss run over the tokens in n chunks, each chunk's logits remade in backward, so the
        (tokens, vocab) fp32 logits never exist whole)."""
        super().__init__()
        self.config = config
        self.activation_checkpointing, self.loss_chunks = activation_checkpointing, loss_chunks
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=make_norm(config, config.n_embd),
            )
        )
        if config.pos_emb == "learned":
            self.transformer.wpe = nn.Embedding(config.block_size, config.n_embd)
        else:
            cos, sin = rope_tables(config.head_dim, config.block_size, config.rope_theta)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.lm_head = Linear(config.n_embd, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            self.lm_head.weight = self.transformer.wte.weight

        self.apply(self._init_weights)
        # GPT-2: scale the init of projections into the residual stream by 1/sqrt(2*n_layer),
        # since each layer adds two of them to the residual
        # (zero_init_proj: at zero instead, so every block starts as the identity, as modded-nanogpt does)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                if config.zero_init_proj:
                    nn.init.zeros_(p)
                else:
                    nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def forward(self, idx, targets=None, cache=None):
        """idx, targets: (B, T) token ids. Returns (logits, loss).

        With targets: logits (B, T, V) and the mean cross-entropy (targets of -1 are ignored); while
        training with loss_chunks > 1, logits None (they are never whole: see below).
        Without: logits (B, 1, V) for the last position only, and loss None."""
        B, T = idx.shape
        start = cache.length if cache is not None else 0
        if start + T > self.config.block_size:
            raise ValueError(f"sequence of {start + T} tokens exceeds block_size {self.config.block_size}")
        x = self.transformer.wte(idx)  # (B, T, C)
        rope = None
        if self.config.pos_emb == "learned":
            x = x + self.transformer.wpe(torch.arange(start, start + T, device=idx.device))
        else:
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])
        x = self.transformer.drop(x)
        every = self.activation_checkpointing
        for layer, block in enumerate(self.transformer.h):
            if every and self.training and cache is None and layer % every == 0:
                # keep only this block's input (B, T, C); backward recomputes the rest, with the
                # same dropout draws (the RNG state is restored for the recomputation)
                x = checkpoint(block, x, rope, use_reentrant=False)
            else:
                x = block(x, rope, cache, layer)
        if cache is not None:
            cache.length += T
        x = self.transformer.ln_f(x)

        if targets is None:
            x = x[:, [-1], :]  # only the next token is needed
        elif self.loss_chunks > 1 and self.training:
            return None, chunked_cross_entropy(x, self.lm_head.weight, targets, self.config, self.loss_chunks)
        logits = self.lm_head(x)[..., : self.config.vocab_size]  # (B, T, V): the padding rows cut off
        cap = self.config.logit_softcap
        if cap:  # in fp32: tanh saturates early in bf16
            logits = cap * torch.tanh(logits.float() / cap)
        if targets is None:
            return logits, None  # (B, 1, V)
        V = self.config.vocab_size
        loss = F.cross_entropy(logits.float().reshape(-1, V), targets.reshape(-1), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def generate(
        self, idx, max_new_tokens, temperature=1.0, top_k=None, *, top_p=None, stop_token=None, use_cache=True
    ):
        """Extend idx (B, T) by up to max_new_tokens sampled tokens.

        temperature 0 picks the most likely token. With stop_token, generation ends once every row
        has produced it. The KV cache holds at most block_size positions; past that each step
        recomputes the last block_size tokens, exactly as without the cache."""
        cache = None
        if use_cache:
            dtype = next(self.parameters()).dtype
            cache = KVCache(self.config, idx.size(0), idx.device, dtype)
        finished = torch.zeros(idx.size(0), dtype=torch.bool, device=idx.device)
        with decode_layout(self):
            for _ in range(max_new_tokens):
                if cache is not None and idx.size(1) <= self.config.block_size:
                    logits, _ = self(idx[:, cache.length :], cache=cache)
                else:
                    logits, _ = self(idx[:, -self.config.block_size :])
                next_token = sample_next(logits[:, -1, :], temperature, top_k, top_p)
                idx = torch.cat((idx, next_token), dim=1)
                if stop_token is not None:
                    finished |= next_token.squeeze(1) == stop_token
                    if finished.all():
                        break
        return idx


def chunked_cross_entropy(x, weight, targets, config, chunks):
    """The mean cross-entropy of the output layer (x: (B, T, C), weight: (V_padded, C)) against
    targets (-1 ignored), `chunks` slices of tokens at a time. Each slice's logits are
    made, reduced to a summed loss and dropped; backward remakes them (torch.utils.checkpoint), so
    at no time do the (B*T, V) fp32 logits and their gradient exist whole: one slice's do."""
    x, targets = x.reshape(-1, x.size(-1)), targets.reshape(-1)
    total = None
    for x_part, t_part in zip(x.chunk(chunks), targets.chunk(chunks)):
        part = checkpoint(
            summed_cross_entropy, x_part, weight, t_part, config.vocab_size, config.logit_softcap, use_reentrant=False
        )
        total = part if total is None else total + part
    return total / (targets != -1).sum()


def summed_cross_entropy(x, weight, targets, vocab_size, softcap=0.0):
    logits = F.linear(x, weight)[:, :vocab_size].float()  # the padding rows cut off
    if softcap:  # as in GPT.forward
        logits = softcap * torch.tanh(logits / softcap)
    return F.cross_entropy(logits, targets, ignore_index=-1, reduction="sum")


def sample_next(logits, temperature=1.0, top_k=None, top_p=None):
    """logits (B, V) -> next token ids (B, 1)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits.float() / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cumulative - sorted_logits.softmax(dim=-1) > top_p  # keep the smallest set reaching top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(1, order, sorted_logits)
    # inverse-CDF sampling: the first token whose cumulative probability reaches u ~ U(0, total].
    # Same distribution as torch.multinomial, which takes ~10x longer over a 32000-token vocab on CPU.
    # u > 0, so a token of probability 0 (cut by top_k/top_p) is never first to reach it.
    cdf = logits.softmax(dim=-1).cumsum(dim=-1)  # (B, V)
    u = (1 - torch.rand(cdf.size(0), 1, device=cdf.device)) * cdf[:, -1:]
    return torch.searchsorted(cdf, u)
