"""
Bits per byte: val loss in bits per UTF-8 byte of the text the val tokens came from, so that runs
with different tokenizers (characters, GPT-2's BPE, SentencePiece) on the same text compare:
bpb = nats per token x tokens per byte / ln 2.

The byte count is exact: the val split's tokens decoded by the dataset's tokenizer, document by
document (the delimiter tokens count no bytes), once; meta.json keeps it as val_bytes, with the
token count it belongs to, so prepare.py computes it and train.py reads it (or computes and
keeps it for a dataset prepared before). A dataset without meta.json (llm.c's bare shards) has
no known text: no bpb.
"""

import math

import numpy as np

from fitgpt.errors import FitGPTError, first_line
from fitgpt.shards import find_shards, open_tokens, write_meta
from fitgpt.tokenization import get_tokenizer


def count_text_bytes(tokenizer, tokens: np.ndarray) -> int:
    """UTF-8 bytes of the text tokens decode to, each document on its own (split at the
    tokenizer's eot_id, which counts no bytes)."""
    eot = tokenizer.eot_id
    if eot is None:
        return tokenizer.text_bytes(tokens.tolist())
    cuts = np.flatnonzero(tokens == eot)
    starts, ends = np.concatenate(([0], cuts + 1)), np.concatenate((cuts, [len(tokens)]))
    return sum(tokenizer.text_bytes(tokens[a:b].tolist()) for a, b in zip(starts, ends) if b > a)


def val_bytes(data_dir: str, meta: dict | None, keep: bool = True) -> tuple[dict | None, str | None]:
    """({'tokens': val tokens, 'bytes': their text's UTF-8 bytes}, None), or (None, the one line
    that says why bits per byte cannot be known). keep: write a new count into meta.json."""
    if meta is None:
        return None, f"bits per byte: {data_dir} has no meta.json, so the text of its tokens is unknown; no bpb logged"
    paths = find_shards(data_dir, "val")
    tokens = np.concatenate([np.asarray(open_tokens(p)) for p in paths]) if paths else np.zeros(0, np.uint16)
    kept = meta.get("val_bytes")
    if kept and kept.get("tokens") == len(tokens):
        return kept, None
    try:
        counted = {"tokens": len(tokens), "bytes": count_text_bytes(get_tokenizer(meta, data_dir), tokens)}
    except FitGPTError as e:  # e.g. the tokenizer's model file or BPE tables are missing
        return None, f"bits per byte: cannot decode {data_dir}'s val tokens ({first_line(e)}); no bpb logged"
    if not counted["bytes"]:
        return None, f"bits per byte: {data_dir}'s val split decodes to no text; no bpb logged"
    if keep:
        write_meta(data_dir, {**meta, "val_bytes": counted})
    return counted, None


def bits_per_byte(nats_per_token: float, counts: dict) -> float:
    return nats_per_token * counts["tokens"] / counts["bytes"] / math.log(2)
