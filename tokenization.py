"""
Tokenizers, chosen by a dataset's meta.json: 'char' (a character table), 'gpt2' (tiktoken),
'sentencepiece' (a model file beside the shards). Each has encode(str) -> list[int],
decode(list[int]) -> str, vocab_size and eot_id (None when there is no end-of-text token).
"""
import os


class CharTokenizer:
    def __init__(self, chars):
        self.chars = list(chars)
        self.stoi = {c: i for i, c in enumerate(self.chars)}
        self.vocab_size = len(self.chars)
        self.eot_id = None

    def encode(self, text):
        missing = sorted(set(text) - self.stoi.keys())
        if missing:
            raise ValueError(f"characters not in the dataset's character table: {''.join(missing)!r}")
        return [self.stoi[c] for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


class TiktokenTokenizer:
    def __init__(self, name="gpt2"):
        import tiktoken  # downloads its BPE files on first use unless TIKTOKEN_CACHE_DIR holds them

        self.enc = tiktoken.get_encoding(name)
        self.vocab_size = self.enc.n_vocab
        self.eot_id = self.enc.eot_token

    def encode(self, text):
        return self.enc.encode_ordinary(text)

    def decode(self, ids):
        return self.enc.decode(list(ids))


class SentencePieceTokenizer:
    def __init__(self, model_path, eot_id=None):
        import sentencepiece

        self.sp = sentencepiece.SentencePieceProcessor(model_file=model_path)
        self.vocab_size = self.sp.get_piece_size()
        self.eot_id = eot_id  # the token between documents (llama2.c: BOS), as meta.json records it

    def encode(self, text):
        return self.sp.encode(text)

    def decode(self, ids):
        return self.sp.decode(list(ids))


def get_tokenizer(meta, data_dir=""):
    """The tokenizer a dataset was prepared with; GPT-2 when there is no meta.json."""
    meta = meta or {"tokenizer": "gpt2"}
    kind = meta.get("tokenizer", "gpt2")
    if kind == "char":
        return CharTokenizer(meta["chars"])
    if kind == "sentencepiece":
        return SentencePieceTokenizer(os.path.join(data_dir, meta["model_file"]), meta.get("eot_id"))
    return TiktokenTokenizer(kind)
