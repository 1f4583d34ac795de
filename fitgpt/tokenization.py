"""
Tokenizers, chosen in one place from a dataset's meta.json: 'char' (a character table), 'gpt2'
(tiktoken), 'sentencepiece' (a model file beside the shards). A dataset without meta.json (e.g.
llm.c's published shards) is GPT-2 tokens. Each tokenizer has encode(str) -> list[int],
decode(list[int]) -> str, vocab_size and eot_id (None when there is no end-of-text token).
"""

import os

from fitgpt.errors import ConfigError

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


class CharTokenizer:
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


class TiktokenTokenizer:
    def __init__(self, name: str = "gpt2"):
        from fitgpt.downloads import tiktoken_encoding  # BPE files: TIKTOKEN_CACHE_DIR or downloaded once

        self.enc = tiktoken_encoding(name)
        self.vocab_size = self.enc.n_vocab
        self.eot_id = self.enc.eot_token

    def encode(self, text: str) -> list[int]:
        return self.enc.encode_ordinary(text)

    def decode(self, ids: list[int]) -> str:
        return self.enc.decode(list(ids))


class SentencePieceTokenizer:
    def __init__(self, model_path: str, eot_id: int | None = None):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=model_path)
        self.vocab_size = self.sp.get_piece_size()
        self.eot_id = eot_id  # the token between documents (llama2.c: BOS), as meta.json records it

    def encode(self, text: str) -> list[int]:
        return self.sp.encode(text)

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(list(ids))


def get_tokenizer(meta: dict | None, data_dir: str = "") -> CharTokenizer | TiktokenTokenizer | SentencePieceTokenizer:
    """The tokenizer a dataset was prepared with; GPT-2 when there is no meta.json."""
    kind = tokenizer_kind(meta)
    if kind == "char":
        return CharTokenizer(meta["chars"])
    if kind == "sentencepiece":
        return SentencePieceTokenizer(os.path.join(data_dir, meta["model_file"]), meta.get("eot_id"))
    return TiktokenTokenizer(kind)
