"""
llama2.c interop: the one place that knows its file formats.

    export_llama2c(model, meta, data_dir, "out/model.bin")   our GPT -> model.bin + tokenizer.bin for run.c
    model = load_llama2c("stories15M.bin")                   a v0 or v1 file -> our GPT

llama2.c's Transformer is the GPTConfig with RUN_C's options: RoPE, RMSNorm, SwiGLU, no biases,
no QK-norm, and the two constants run.c hard-codes (RoPE base 10000, RMSNorm epsilon 1e-5).

Files (little-endian, as run.c reads them on x86 and ARM):
- v0, llama2.c's original format and the one run.c reads: 7 int32 (dim, hidden_dim, n_layers,
  n_heads, n_kv_heads, vocab_size, seq_len; vocab_size negative when an untied classifier
  follows), then the fp32 tensors named in ORDERS[0].
- v1 (llama2.c's export.py --version 1): a 256-byte header (uint32 magic "ak42", int32 version 1,
  the same 7 int32 with vocab_size positive, a uint8 that is 1 when the classifier is tied,
  zeros), then the fp32 tensors in ORDERS[1], without the legacy RoPE tables.
- tokenizer.bin (llama2.c's tokenizer.py export): int32 max_token_length, then for each piece a
  float32 score, an int32 byte length and its UTF-8 bytes; '▁' is written as a space, BOS as
  "\\n<s>\\n" and EOS as "\\n</s>\\n".
Tensors (Linear weights (out, in), stacked over the L layers): token_embedding_table (V, C),
rms_att_weight (L, C), wq (L, H*D, C), wk and wv (L, K*D, C), wo (L, C, H*D), rms_ffn_weight (L, C),
w1 = our c_gate (L, F, C), w2 = our c_proj (L, C, F), w3 = our c_fc (L, F, C), rms_final_weight (C,),
freq_cis_real and freq_cis_imag (seq_len, D/2; v0 only, and run.c skips them), wcls (V, C) untied.

Rotary layout: run.c rotates the adjacent pairs (2i, 2i+1) of each head by pos * 10000^(-2i/D);
model.py rotates the pairs (i, i + D/2) by the same angles (Hugging Face's layout). So the rows
of wq and wk are permuted on export, row 2i of a head being our row i and row 2i+1 our row
i + D/2, and back on import: the model computes the same function in either file.
The embedding and output layer lose their padding rows (GPTConfig.padded_vocab_size) on export
and get zero rows back on import.
"""

import math
import os
import struct
from dataclasses import dataclass

import numpy as np
import torch

from fitgpt.architecture import GPTConfig
from fitgpt.errors import CheckpointError, ConfigError
from fitgpt.fsutil import atomic_write
from fitgpt.tokenization import load_sentencepiece, tokenizer_kind
from model import GPT, rope_tables

RUN_C = dict(
    pos_emb="rope",
    norm="rmsnorm",
    mlp="swiglu",
    bias=False,
    qk_norm=False,
    rope_theta=10000.0,
    norm_eps=1e-5,
    logit_softcap=0.0,
)
RUN_C_BOS = 1  # run.c starts a prompt with token 1 and stops at it
MAGIC = 0x616B3432  # "ak42", the first uint32 of a v1 file
V1_HEADER_BYTES = 256
ORDERS = {
    0: (
        "token_embedding_table",
        "rms_att_weight",
        "wq",
        "wk",
        "wv",
        "wo",
        "rms_ffn_weight",
        "w1",
        "w2",
        "w3",
        "rms_final_weight",
        "freq_cis_real",
        "freq_cis_imag",
    ),
    1: (
        "rms_att_weight",
        "rms_ffn_weight",
        "rms_final_weight",
        "token_embedding_table",
        "wq",
        "wk",
        "wv",
        "wo",
        "w1",
        "w2",
        "w3",
    ),
}
# llama2.c's per-layer tensor -> ours in transformer.h.<layer>. (wq, wk, wv are rows of our fused c_attn)
LAYER_TENSORS = {
    "rms_att_weight": "ln_1.weight",
    "wo": "attn.c_proj.weight",
    "rms_ffn_weight": "ln_2.weight",
    "w1": "mlp.c_gate.weight",
    "w2": "mlp.c_proj.weight",
    "w3": "mlp.c_fc.weight",
}


@dataclass
class Header:
    """What a llama2.c file's header says; field names as in run.c's Config."""

    dim: int
    hidden_dim: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    vocab_size: int  # always positive here; tied says what the sign says in v0
    seq_len: int
    tied: bool
    version: int = 0

    @classmethod
    def of(cls, config: GPTConfig, version: int = 0) -> "Header":
        return cls(
            config.n_embd,
            config.hidden_dim,
            config.n_layer,
            config.n_head,
            config.n_kv_heads,
            config.vocab_size,
            config.block_size,
            config.tie_embeddings,
            version,
        )

    @property
    def head_size(self) -> int:
        return self.dim // self.n_heads

    def describe(self) -> str:
        return (
            f"dim={self.dim}, hidden_dim={self.hidden_dim}, n_layers={self.n_layers}, n_heads={self.n_heads}, "
            f"n_kv_heads={self.n_kv_heads}, vocab_size={self.vocab_size}, seq_len={self.seq_len}"
        )

    def pack(self) -> bytes:
        if self.version == 0:
            vocab = self.vocab_size if self.tied else -self.vocab_size
            return struct.pack("<7i", *self.dims()[:5], vocab, self.seq_len)
        return struct.pack("<Ii7iB", MAGIC, 1, *self.dims(), int(self.tied)).ljust(V1_HEADER_BYTES, b"\0")

    def dims(self) -> tuple[int, ...]:
        return (self.dim, self.hidden_dim, self.n_layers, self.n_heads, self.n_kv_heads, self.vocab_size, self.seq_len)

    def order(self) -> tuple[str, ...]:
        """The tensors of the file, in file order."""
        return ORDERS[self.version] + (() if self.tied else ("wcls",))

    def shapes(self) -> dict[str, tuple[int, ...]]:
        L, C, F, V, D = self.n_layers, self.dim, self.hidden_dim, self.vocab_size, self.head_size
        return {
            "token_embedding_table": (V, C),
            "rms_att_weight": (L, C),
            "wq": (L, self.n_heads * D, C),
            "wk": (L, self.n_kv_heads * D, C),
            "wv": (L, self.n_kv_heads * D, C),
            "wo": (L, C, self.n_heads * D),
            "rms_ffn_weight": (L, C),
            "w1": (L, F, C),
            "w2": (L, C, F),
            "w3": (L, F, C),
            "rms_final_weight": (C,),
            "freq_cis_real": (self.seq_len, D // 2),
            "freq_cis_imag": (self.seq_len, D // 2),
            "wcls": (V, C),
        }

    def file_bytes(self) -> int:
        shapes = self.shapes()
        header = 7 * 4 if self.version == 0 else V1_HEADER_BYTES
        return header + 4 * sum(math.prod(shapes[name]) for name in self.order())


def halves_to_pairs(w: torch.Tensor, heads: int) -> torch.Tensor:
    """(..., heads*D, C) rows in model.py's rotary order -> run.c's: row 2i of each head is row i,
    row 2i+1 is row i + D/2."""
    *lead, rows, cols = w.shape
    return w.reshape(*lead, heads, 2, rows // heads // 2, cols).transpose(-3, -2).reshape(w.shape)


def pairs_to_halves(w: torch.Tensor, heads: int) -> torch.Tensor:
    """The inverse of halves_to_pairs."""
    *lead, rows, cols = w.shape
    return w.reshape(*lead, heads, rows // heads // 2, 2, cols).transpose(-3, -2).reshape(w.shape)


def check_exportable(config: GPTConfig, meta: dict | None, data_dir: str) -> str:
    """The path of the SentencePiece model of a model run.c can run; otherwise a ConfigError
    naming, in one line, every setting that run.c cannot run."""
    problems = [f"{k}={getattr(config, k)!r} (run.c needs {v!r})" for k, v in RUN_C.items() if getattr(config, k) != v]
    kind = tokenizer_kind(meta)
    model_file = None
    if kind != "sentencepiece":
        source = f"{data_dir}/meta.json" if meta is not None else f"no meta.json in {data_dir}"
        problems.append(
            f"tokenizer={kind!r} ({source}; run.c reads a SentencePiece vocabulary: prepare the dataset "
            f"with --vocab_size N or --tokenizer_model PATH)"
        )
    else:
        model_file = os.path.join(data_dir, meta["model_file"])
        sp = load_sentencepiece(model_file)
        if sp.get_piece_size() != config.vocab_size:
            problems.append(f"vocab_size={config.vocab_size} ({model_file} has {sp.get_piece_size()} pieces)")
        if sp.bos_id() != RUN_C_BOS:
            problems.append(f"BOS id {sp.bos_id()} in {model_file} (run.c takes token {RUN_C_BOS} as BOS)")
    if problems:
        raise ConfigError(f"cannot export for llama2.c's run.c: {'; '.join(problems)}")
    return model_file


def to_llama2c(model: GPT) -> dict[str, torch.Tensor]:
    """Our GPT's weights as llama2.c's fp32 tensors (every one a file may hold), by llama2.c's names."""
    c = model.config
    ours = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}

    def stacked(name):  # (L, ...) of one tensor of every block
        return torch.stack([ours[f"transformer.h.{layer}.{name}"] for layer in range(c.n_layer)])

    D = c.head_dim
    q, k, v = stacked("attn.c_attn.weight").split([c.n_head * D, c.n_kv_heads * D, c.n_kv_heads * D], dim=1)
    cos, sin = rope_tables(D, c.block_size, c.rope_theta)  # (T, D), each half the same angles
    return {
        "token_embedding_table": ours["transformer.wte.weight"][: c.vocab_size],
        "wq": halves_to_pairs(q, c.n_head),
        "wk": halves_to_pairs(k, c.n_kv_heads),
        "wv": v,
        **{theirs: stacked(name) for theirs, name in LAYER_TENSORS.items()},
        "rms_final_weight": ours["transformer.ln_f.weight"],
        "freq_cis_real": cos[:, : D // 2],
        "freq_cis_imag": sin[:, : D // 2],
        "wcls": ours["lm_head.weight"][: c.vocab_size],
    }


def write_llama2c(model: GPT, path: str, version: int = 0) -> Header:
    """Write our GPT as a llama2.c file (version 0: what run.c reads), atomically; returns its header.
    The caller checks it is exportable (check_exportable)."""
    header = Header.of(model.config, version)
    tensors = to_llama2c(model)

    def write(f):
        f.write(header.pack())
        for name in header.order():
            f.write(memoryview(np.ascontiguousarray(tensors[name].numpy(), dtype="<f4")))

    atomic_write(path, write)
    return header


def write_tokenizer_bin(model_file: str, path: str) -> int:
    """Write run.c's tokenizer.bin for a SentencePiece model, atomically; returns its pieces."""
    sp = load_sentencepiece(model_file)
    special = {sp.bos_id(): "\n<s>\n", sp.eos_id(): "\n</s>\n"}
    pieces = [
        (sp.get_score(i), special.get(i, sp.id_to_piece(i)).replace("\u2581", " ").encode("utf-8"))
        for i in range(sp.get_piece_size())
    ]

    def write(f):
        f.write(struct.pack("<i", max(len(text) for _, text in pieces)))
        for score, text in pieces:
            f.write(struct.pack("<fi", score, len(text)) + text)

    atomic_write(path, write)
    return len(pieces)


def export_llama2c(model: GPT, meta: dict | None, data_dir: str, path: str) -> tuple[Header, str]:
    """model.bin (v0) at path and tokenizer.bin beside it, from the model and its dataset's
    SentencePiece model; returns (the header written, the tokenizer.bin path)."""
    model_file = check_exportable(model.config, meta, data_dir)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    header = write_llama2c(model, path)
    tokenizer_path = os.path.join(os.path.dirname(path), "tokenizer.bin")
    write_tokenizer_bin(model_file, tokenizer_path)
    return header, tokenizer_path


def read_header(path: str) -> tuple[Header, int]:
    """(the header of a llama2.c v0 or v1 file, the byte offset of its first tensor), checked
    against the file's size; one line naming the file when it is not one or is truncated."""
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such llama2.c checkpoint file")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(V1_HEADER_BYTES)
    if len(head) >= 8 and struct.unpack_from("<I", head)[0] == MAGIC:
        version = struct.unpack_from("<i", head, 4)[0]
        if version != 1:
            raise CheckpointError(
                f"{path}: llama2.c format version {version}; only the fp32 versions 0 and 1 are read "
                f"(version 2 is runq.c's int8 format)"
            )
        if len(head) < V1_HEADER_BYTES:
            raise CheckpointError(f"{path}: {size} bytes, shorter than a llama2.c v1 header; the file is truncated")
        *dims, tied = struct.unpack_from("<7iB", head, 8)
        offset = V1_HEADER_BYTES
    else:
        if len(head) < 7 * 4:
            raise CheckpointError(f"{path}: {size} bytes, too short for a llama2.c checkpoint header")
        dims = list(struct.unpack_from("<7i", head))
        version, tied, offset = 0, dims[5] > 0, 7 * 4
        dims[5] = abs(dims[5])
    header = Header(*dims, tied=bool(tied), version=version)
    if (
        min(dims) <= 0
        or max(dims) >= 2**24  # no model has a dimension this large: these bytes are something else
        or header.dim % header.n_heads
        or header.n_heads % header.n_kv_heads
        or header.head_size % 2
    ):
        raise CheckpointError(f"{path}: not a llama2.c checkpoint (its header would say {header.describe()})")
    if size != header.file_bytes():
        raise CheckpointError(
            f"{path}: {size:,} bytes, but a llama2.c v{version} file of its header's shape ({header.describe()}) "
            f"has {header.file_bytes():,}; it is truncated or not a llama2.c checkpoint"
        )
    return header, offset


def read_llama2c(path: str) -> tuple[Header, dict[str, torch.Tensor]]:
    """(header, {llama2.c name: fp32 tensor}) of a v0 or v1 file."""
    header, offset = read_header(path)
    data = np.memmap(path, dtype="<f4", mode="r", offset=offset)
    tensors, start = {}, 0
    shapes = header.shapes()
    for name in header.order():
        count = math.prod(shapes[name])
        tensors[name] = torch.from_numpy(np.array(data[start : start + count]).reshape(shapes[name]))
        start += count
    return header, tensors


def from_llama2c(
    header: Header, tensors: dict[str, torch.Tensor], block_size: int | None = None, dropout: float = 0.0
) -> GPT:
    """Our GPT holding llama2.c's tensors; block_size None: the header's seq_len."""
    h = header
    config = GPTConfig(
        **RUN_C,
        block_size=block_size or h.seq_len,
        vocab_size=h.vocab_size,
        n_layer=h.n_layers,
        n_head=h.n_heads,
        n_embd=h.dim,
        n_kv_heads=h.n_kv_heads,
        mlp_hidden=h.hidden_dim,
        tie_embeddings=h.tied,
        dropout=dropout,
    )
    model = GPT(config)

    def padded(rows):  # (V, C) -> (Vp, C), zero padding rows
        return torch.cat([rows, rows.new_zeros(config.padded_vocab_size - len(rows), rows.size(1))])

    c_attn = torch.cat([pairs_to_halves(tensors["wq"], h.n_heads), pairs_to_halves(tensors["wk"], h.n_kv_heads)], 1)
    c_attn = torch.cat([c_attn, tensors["wv"]], dim=1)  # (L, H*D + 2*K*D, C): our fused q, k, v rows
    state_dict = {
        "transformer.wte.weight": padded(tensors["token_embedding_table"]),
        "transformer.ln_f.weight": tensors["rms_final_weight"],
        "lm_head.weight": padded(tensors["token_embedding_table" if h.tied else "wcls"]),
    }
    for layer in range(h.n_layers):
        state_dict[f"transformer.h.{layer}.attn.c_attn.weight"] = c_attn[layer]
        for theirs, name in LAYER_TENSORS.items():
            state_dict[f"transformer.h.{layer}.{name}"] = tensors[theirs][layer]
    model.load_state_dict(state_dict)  # tied: both names copy the same rows into the one shared tensor
    return model


def load_llama2c(path: str, block_size: int | None = None, dropout: float = 0.0) -> GPT:
    """Our GPT from a llama2.c checkpoint (v0, e.g. karpathy's stories15M.bin, or v1), its shape
    from the header. block_size None: the header's seq_len (RoPE allows any); dropout: fine-tuning."""
    return from_llama2c(*read_llama2c(path), block_size=block_size, dropout=dropout)
