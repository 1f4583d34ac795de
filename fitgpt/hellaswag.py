"""
HellaSwag (Zellers et al. 2019): pick the right one of 4 endings for a short context. Each ending
is scored by the model's log-probability of its tokens after the context: acc takes the ending
with the highest sum, acc_norm the highest mean per token (llm.c's and nanoGPT's way; GPT-2 124M
scores acc_norm ~0.29 on the 10,042 validation items there). lm-evaluation-harness normalises by
characters instead, so its acc_norm differs by a point or two; see docs/evaluation.md.

The validation file is the public jsonl (fields ctx, endings, label); it is downloaded once to
data/hellaswag/ or read from a path given with hellaswag_file.
"""

import json
import math
import os
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from fitgpt.distributed import Distributed, sum_over_ranks
from fitgpt.downloads import download_text
from fitgpt.errors import ConfigError, DataError
from fitgpt.fsutil import file_problem
from fitgpt.shards import REPO
from fitgpt.tokenization import Tokenizer

VAL_URL = "https://raw.githubusercontent.com/rowanz/hellaswag/master/data/hellaswag_val.jsonl"
CACHE = os.path.join(REPO, "data", "hellaswag", "hellaswag_val.jsonl")
ENDINGS = 4


@dataclass
class Item:
    context: str
    endings: list[str]
    label: int


def read_items(path: str) -> list[Item]:
    """The items of a HellaSwag jsonl file; a malformed line is one error naming the file and line."""
    items = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                item = Item(row["ctx"], list(row["endings"]), int(row["label"]))
            except (ValueError, KeyError, TypeError) as e:
                raise DataError(f"{path}:{number}: not a HellaSwag item ({e}); expected ctx, endings, label") from None
            if len(item.endings) != ENDINGS or not 0 <= item.label < ENDINGS:
                raise DataError(f"{path}:{number}: a HellaSwag item has 4 endings and a label 0-3")
            items.append(item)
    if not items:
        raise DataError(f"{path}: no HellaSwag items in it")
    return items


def locate(path: str = "") -> str:
    """The validation file: path when given, else data/hellaswag/'s copy, downloaded on first use."""
    if path:
        problem = file_problem(path)
        if problem:
            raise DataError(f"hellaswag_file={path}: {problem}")
        return path
    if not os.path.isfile(CACHE):
        text = download_text(
            VAL_URL, f"offline, copy hellaswag_val.jsonl from {VAL_URL} to {CACHE} or pass hellaswag_file=PATH"
        )
        os.makedirs(os.path.dirname(CACHE), exist_ok=True)
        partial = f"{CACHE}.{os.getpid()}.tmp"  # each rank of a torchrun job may be fetching it
        with open(partial, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(partial, CACHE)
    return CACHE


@dataclass
class Encoded:
    context: list[int]
    endings: list[list[int]]
    label: int


def encode_items(items: list[Item], tokenizer: Tokenizer) -> list[Encoded]:
    """Each item's context tokens (after BOS, for tokenizers that start documents with one) and
    its endings' tokens; an ending follows its context after a space, as in running text."""
    bos = [] if tokenizer.bos_id is None else [tokenizer.bos_id]
    try:
        return [
            Encoded(bos + tokenizer.encode(item.context), [tokenizer.encode(" " + e) for e in item.endings], item.label)
            for item in items
        ]
    except ConfigError as e:  # a character table that lacks some of HellaSwag's characters
        raise ConfigError(f"HellaSwag needs a tokenizer that can encode its text (GPT-2, SentencePiece): {e}") from None


def rows(encoded: list[Encoded], block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (N*4, T) for N encoded items: one row per ending, context then ending,
    cut from the left to block_size + 1 tokens; targets are -1 except at the ending's tokens."""
    sequences = []
    for item in encoded:
        for ending in item.endings:
            tokens = (item.context + ending)[-(block_size + 1) :]
            sequences.append((tokens, min(len(ending), len(tokens) - 1)))
    width = max(len(tokens) for tokens, _ in sequences) - 1
    x = torch.zeros(len(sequences), width, dtype=torch.long)
    y = torch.full((len(sequences), width), -1, dtype=torch.long)
    for i, (tokens, scored) in enumerate(sequences):
        t = torch.tensor(tokens)
        x[i, : len(tokens) - 1] = t[:-1]
        y[i, len(tokens) - 1 - scored : len(tokens) - 1] = t[len(tokens) - scored :]
    return x, y


@torch.no_grad()
def ending_scores(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: AbstractContextManager
) -> tuple[torch.Tensor, torch.Tensor]:
    """The summed log-probability of each row's target tokens and their number, both (rows,)."""
    with ctx:
        logits = model(x, y)[0]  # (rows, T, V)
    logprobs = F.log_softmax(logits.float(), dim=-1).gather(-1, y.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    scored = y >= 0
    return (logprobs * scored).sum(dim=1), scored.sum(dim=1)


def batches(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    encoded: list[Encoded],
    ctx: AbstractContextManager,
    device: str,
    *,
    dist: Distributed | None = None,
    batch_items: int = 8,
) -> dict:
    """acc and acc_norm over the items, with their standard errors. Under torchrun rank r scores
    items r, r+W, ... and the counts are summed, so every rank returns the same result."""
    dist = dist or Distributed()
    was_training = model.training
    model.eval()
    correct = torch.zeros(2, dtype=torch.float64)  # acc, acc_norm
    mine = list(batches(encoded[dist.rank :: dist.world_size], batch_items))
    # every rank runs the same number of forward passes (FSDP gathers weights in each): a rank
    # with fewer items scores a spare batch and drops its result
    rounds = math.ceil(math.ceil(len(encoded) / dist.world_size) / batch_items)
    for i in range(rounds):
        batch = mine[i] if i < len(mine) else encoded[:1]
        x, y = rows(batch, model.config.block_size)
        total, count = ending_scores(model, x.to(device), y.to(device), ctx)
        if i >= len(mine):
            continue
        total, count = total.view(-1, ENDINGS).cpu(), count.view(-1, ENDINGS).cpu()
        labels = torch.tensor([item.label for item in batch])
        correct[0] += (total.argmax(dim=1) == labels).sum().item()
        correct[1] += ((total / count).argmax(dim=1) == labels).sum().item()
    model.train(was_training)
    n = len(encoded)
    acc, acc_norm = (value / n for value in sum_over_ranks(correct.tolist(), dist, device))
    return {
        "items": n,
        "acc": acc,
        "acc_stderr": standard_error(acc, n),
        "acc_norm": acc_norm,
        "acc_norm_stderr": standard_error(acc_norm, n),
    }


def standard_error(p: float, n: int) -> float:
    """The standard error of an accuracy p measured on n independent items."""
    return math.sqrt(p * (1 - p) / n)
