"""
GPTConfig: the shape and options of a model. It lives here, free of torch, so that plan.py and
flops.py and memory.py can size a model in milliseconds; model.py builds the network from it.

The default is GPT-2 small (learned position embeddings, LayerNorm, GELU MLP, tied embeddings).
Options make it Llama-style: RoPE, RMSNorm, SwiGLU, grouped-query attention, QK-norm.
"""

import math
from dataclasses import asdict, dataclass, fields

from fitgpt.errors import ConfigError

CHOICES = {"pos_emb": ("learned", "rope"), "norm": ("layernorm", "rmsnorm"), "mlp": ("gelu", "swiglu", "relu2")}


@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50257  # tokens the tokenizer produces (GPT-2's); see padded_vocab_size
    vocab_multiple: int = 64  # the embedding and output layer are padded to a multiple of this
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    n_kv_heads: int | None = None  # grouped-query attention; None means n_head
    dropout: float = 0.0
    bias: bool = True  # biases in Linear and LayerNorm layers
    pos_emb: str = "learned"  # 'learned' | 'rope'
    rope_theta: float = 10000.0
    norm: str = "layernorm"  # 'layernorm' | 'rmsnorm'
    norm_eps: float = 1e-5
    mlp: str = "gelu"  # 'gelu' | 'swiglu' | 'relu2' (ReLU squared, modded-nanogpt's)
    mlp_hidden: int | None = None  # None: 4*n_embd (gelu, relu2) or llama's 2/3 * 4*n_embd rounding (swiglu)
    multiple_of: int = 256  # swiglu hidden size is rounded up to this
    tie_embeddings: bool = True
    qk_norm: bool = False  # RMSNorm on each head's query and key before attention
    logit_softcap: float = 0.0  # > 0: logits become cap * tanh(logits / cap) (Gemma 2, modded-nanogpt)
    zero_init_proj: bool = False  # the blocks' output projections start at zero: each block starts as the identity

    def __post_init__(self):
        for name in ("block_size", "vocab_size", "vocab_multiple", "n_layer", "n_head", "n_embd", "multiple_of"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_head
        if self.n_kv_heads <= 0:
            raise ConfigError(f"n_kv_heads must be positive, got {self.n_kv_heads}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if self.n_head % self.n_kv_heads:
            raise ConfigError(f"n_head ({self.n_head}) must be divisible by n_kv_heads ({self.n_kv_heads})")
        if self.pos_emb == "rope" and (self.n_embd // self.n_head) % 2:
            raise ConfigError(f"rope needs an even head dim, got n_embd/n_head = {self.n_embd // self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.logit_softcap < 0:
            raise ConfigError(f"logit_softcap must be >= 0 (0 is off), got {self.logit_softcap}")
        if self.mlp_hidden is not None and self.mlp_hidden <= 0:
            raise ConfigError(f"mlp_hidden must be positive, got {self.mlp_hidden}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the embedding and output layer: vocab_size rounded up to vocab_multiple, so the
        largest matmul has GPU-friendly shapes (GPT-2's 50257 -> 50304). The extra rows' logits are
        cut off before the loss and sampling, so they never matter."""
        return self.vocab_multiple * math.ceil(self.vocab_size / self.vocab_multiple)

    @property
    def hidden_dim(self) -> int:
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.mlp in ("gelu", "relu2"):
            return 4 * self.n_embd
        # llama: two thirds of 4*C (SwiGLU has three matrices instead of two), rounded up
        hidden = int(2 * 4 * self.n_embd / 3)
        return self.multiple_of * math.ceil(hidden / self.multiple_of)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_settings(cls, settings: object, **overrides) -> "GPTConfig":
        """The config named by a run's settings (any object with these attributes), with overrides."""
        return cls(**{**{name: getattr(settings, name) for name in cls.field_names()}, **overrides})

    def to_dict(self) -> dict:
        return asdict(self)
