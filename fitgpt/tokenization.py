"""
Tokenizers, chosen in one place from a dataset's meta.json: 'char' (a character table), 'gpt2'
(tiktoken), 'sentencepiece' (a model file beside the shards). A dataset without meta.json (e.g.
llm.c's published shards) is GPT-2 tokens. Each tokenizer has encode(str) -> list[int],
decode(list[int]) -> str, text_bytes(list[int]) -> int (the UTF-8 bytes of that text, for bits
per byte), vocab_size, eot_id (None when there is no end-of-text token) and bos_id (the token
every document starts with, which a prompt starts with too; None for 'char' and 'gpt2').

SentencePiece vocabularies are llama2.c's: an existing model (Llama 2's tokenizer.model) or one
trained on the data (train_sentencepiece: BPE with byte fallback, unk/bos/eos = 0/1/2), and each
document starts with BOS, which is therefore meta.json's eot_id.
"""

import hashlib
import json
import math
import os
from collections.abc import Iterable

from fitgpt.errors import ConfigError, DataError, first_line

GPT2_VOCAB_SIZE = 50257  # GPT-2's BPE tokens; the model pads its embedding to 50304
GPT2_EOT = 50256  # <|endoftext|>
GPT2_META = {"tokenizer": "gpt2", "vocab_size": GPT2_VOCAB_SIZE, "eot_id": GPT2_EOT}


def dataset_vocab_size(meta: dict | None) -> int:
    """The vocabulary a dataset's tokens come from: meta.json's, else GPT-2's."""
    return (meta or GPT2_META)["vocab_size"]


def assumed_vocab_warning(data_dir: str, meta: dict | None, vocab_size: int, largest_id: int) -> str | None:
    """A warning when a dataset without meta.json is taken to be GPT-2 tokens but uses far fewer
    ids (e.g. a character dataset whose meta.json went missing): its model would be mostly unused
    vocabulary, and its loss would start near ln(50257) = 10.8."""
    if meta is not None or largest_id >= vocab_size // 2:
        return None
    return (
        f"WARNING: {data_dir} has no meta.json, so its tokens are taken to be GPT-2's ({vocab_size:,} ids), "
        f"but the largest id in them is {largest_id}; if another tokenizer made them, restore its meta.json "
        f"or set vocab_size={largest_id + 1}"
    )


def tokenizer_kind(meta: dict | None) -> str:
    return (meta or GPT2_META).get("tokenizer", "gpt2")


def tokenizer_identity(meta: dict | None, data_dir: str) -> dict:
    """What a dataset's token ids mean: the tokenizer's kind, vocabulary size and a SHA-256 of its
    table (a char dataset's characters, a SentencePiece model file; GPT-2's BPE is fixed by its
    name). Checkpoints carry it, so that a run never resumes or fine-tunes on ids that mean other
    characters or pieces."""
    kind, digest = tokenizer_kind(meta), None
    if kind == "char":
        digest = hashlib.sha256(json.dumps(meta["chars"], ensure_ascii=False).encode("utf-8")).hexdigest()
    elif kind == "sentencepiece":
        model = os.path.join(data_dir, meta["model_file"])
        if os.path.isfile(model):
            with open(model, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
    return {"kind": kind, "vocab_size": dataset_vocab_size(meta), "sha256": digest}


def describe_tokenizer(identity: dict) -> str:
    """'char, 65 symbols, table 3f2a9c01d4e7': a tokenizer identity in a line."""
    unit = {"char": "symbols", "sentencepiece": "pieces"}.get(identity["kind"], "tokens")
    table = {"char": "table", "sentencepiece": "model"}.get(identity["kind"])
    digest = f", {table} {identity['sha256'][:12]}" if identity.get("sha256") else ""
    return f"{identity['kind']}, {identity['vocab_size']:,} {unit}{digest}"


class CharTokenizer:
    bos_id = None  # a character model's prompt is its characters

    def __init__(self, chars: list[str]):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)
        self.eot_id = None

    def encode(self, text: str) -> list[int]:
        missing = sorted(set(text) - self.stoi.keys())
        if missing:
            raise ConfigError(f"characters not in the dataset's character table: {''.join(missing)!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)

    def text_bytes(self, ids: list[int]) -> int:
        """UTF-8 bytes of the text ids decode to."""
        return len(self.decode(ids).encode("utf-8"))


class TiktokenTokenizer:
    bos_id = None  # a GPT-2 prompt starts with its text, as nanoGPT's do

    def __init__(self, name: str = "gpt2"):
        from fitgpt.downloads import tiktoken_encoding  # BPE files: TIKTOKEN_CACHE_DIR or downloaded once

        self.enc = tiktoken_encoding(name)
        self.vocab_size = self.enc.n_vocab
        self.eot_id = self.enc.eot_token

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(list(ids))

    def text_bytes(self, ids: list[int]) -> int:
        """UTF-8 bytes of the text ids decode to: the tokens' bytes, a character cut by a split
        counted as its bytes on each side (decode would make it a 3-byte replacement)."""
        return len(self.enc.decode_bytes(list(ids)))


def load_sentencepiece(model_path: str):  # -> sentencepiece.SentencePieceProcessor
    """The SentencePiece model in model_path, or a one-line error naming the file."""
    import sentencepiece

    if os.path.isdir(model_path):
        raise ConfigError(f"{model_path}: a directory, not a SentencePiece model file")
    if not os.path.isfile(model_path):
        raise ConfigError(f"{model_path}: no such SentencePiece model file")
    try:
        return sentencepiece.SentencePieceProcessor(model_file=model_path)
    except (RuntimeError, OSError) as e:
        raise ConfigError(f"{model_path}: not a SentencePiece model ({first_line(e)})") from None


class SentencePieceTokenizer:
    def __init__(self, model_path: str, eot_id: int | None = None):
        self.sp = load_sentencepiece(model_path)
        self.vocab_size = self.sp.get_piece_size()
        self.eot_id = eot_id  # the token between documents (llama2.c: BOS), as meta.json records it
        self.bos_id = self.sp.bos_id() if self.sp.bos_id() >= 0 else None

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(list(ids))

    def text_bytes(self, ids: list[int]) -> int:
        """UTF-8 bytes of the text ids decode to (without the space SentencePiece prefixes to each
        document, which decode drops)."""
        return len(self.decode(ids).encode("utf-8"))


Tokenizer = CharTokenizer | TiktokenTokenizer | SentencePieceTokenizer


def get_tokenizer(meta: dict | None, data_dir: str = "") -> Tokenizer:
    """The tokenizer a dataset was prepared with; GPT-2 when there is no meta.json."""
    kind = tokenizer_kind(meta)
    if kind == "char":
        return CharTokenizer(meta["chars"])
    if kind == "sentencepiece":
        return SentencePieceTokenizer(os.path.join(data_dir, meta["model_file"]), meta.get("eot_id"))
    return TiktokenTokenizer(kind)


def sentencepiece_meta(model_path: str) -> dict:
    """meta.json of a dataset tokenized with the SentencePiece model in model_path (which sits in
    the dataset folder): each document starts with its BOS, so BOS is the delimiter, eot_id."""
    sp = load_sentencepiece(model_path)
    if sp.bos_id() < 0:
        raise ConfigError(f"{model_path}: the SentencePiece model has no BOS piece, which starts every document")
    if sp.get_piece_size() > 2**16:
        raise ConfigError(f"{model_path}: {sp.get_piece_size():,} pieces do not fit the shards' uint16 token ids")
    return {
        "tokenizer": "sentencepiece",
        "model_file": os.path.basename(model_path),
        "vocab_size": sp.get_piece_size(),
        "eot_id": sp.bos_id(),
    }


def tokenizer_at(path: str) -> Tokenizer:
    """The tokenizer of a dataset folder (its meta.json), or of a SentencePiece .model file."""
    if os.path.isdir(path):
        from fitgpt.shards import read_meta

        return get_tokenizer(read_meta(path), path)
    return get_tokenizer(sentencepiece_meta(path), os.path.dirname(path))


def train_sentencepiece(texts: Iterable[str], vocab_size: int, out_dir: str, max_chars: float | None = None) -> str:
    """Train a SentencePiece BPE vocabulary of vocab_size pieces on texts (up to max_chars
    characters) with llama2.c's settings (byte fallback, digits split, unk/bos/eos ids 0/1/2) and
    no whitespace collapsing, so that text round-trips; returns out_dir/tok<N>.model. An existing
    tok<N>.model is reused: shards already written depend on it."""
    import sentencepiece

    model = os.path.join(out_dir, f"tok{vocab_size}.model")
    if os.path.exists(model):
        return model
    os.makedirs(out_dir, exist_ok=True)
    tmp = os.path.join(out_dir, f"tok{vocab_size}.tmp")
    try:
        with open(tmp + ".txt", "w", encoding="utf-8") as f:  # removed below, whatever goes wrong
            room = math.inf if max_chars is None else int(max_chars)  # characters still to write
            for text in texts:
                if room <= 0:
                    break
                f.write((text if len(text) <= room else text[:room]) + "\n")
                room -= len(text)
        sentencepiece.SentencePieceTrainer.train(
            input=tmp + ".txt",
            model_prefix=tmp,
            model_type="bpe",
            vocab_size=vocab_size,
            input_format="text",
            character_coverage=1.0,
            num_threads=os.cpu_count(),
            split_digits=True,
            allow_whitespace_only_pieces=True,
            byte_fallback=True,
            unk_id=0,
            bos_id=1,
            eos_id=2,
            pad_id=-1,
            unk_surface=r" \342\201\207 ",
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            minloglevel=2,
        )
        os.replace(tmp + ".vocab", model[: -len(".model")] + ".vocab")
        os.replace(tmp + ".model", model)  # last: the model exists only once complete
    except RuntimeError as e:  # e.g. a vocabulary larger than the text allows
        raise DataError(f"--vocab_size {vocab_size}: SentencePiece cannot train it ({first_line(e)})") from None
    finally:
        for leftover in (tmp + ".txt", tmp + ".model", tmp + ".vocab"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return model
