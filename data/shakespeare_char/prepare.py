"""
Character-level tiny shakespeare: one token per character (65 of them).

    python data/shakespeare_char/prepare.py                       # downloads the text
    python data/shakespeare_char/prepare.py --input tinyshakespeare.txt

Writes shakespeare_char_train_000000.bin (first 90%), shakespeare_char_val_000000.bin (last 10%)
and meta.json with the character table (and the val text's byte count), beside this file (or in --out_dir),
swapped in whole once written (a dataset already there is replaced only then).
Importable: prepare(text, out_dir) does the same for any string.
"""

import hashlib
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
import configurator
from fitgpt import staging
from fitgpt.bpb import val_bytes
from fitgpt.corpus import decode_text
from fitgpt.downloads import download_text
from fitgpt.errors import ConfigError, DataError, exit_on_error
from fitgpt.fsutil import file_problem
from fitgpt.shards import shard_name, write_meta, write_shard

URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
NAME = "shakespeare_char"


def prepare(text: str, out_dir: str, val_fraction: float = 0.1) -> dict:
    """Encode text by character, split train/val, write shards and meta.json; returns meta."""
    if len(text) < 20:  # both splits need a few characters (the val split is a tenth)
        raise DataError(f"the text has {len(text)} characters; a character-level dataset needs at least 20")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    split = int(len(ids) * (1 - val_fraction))
    job = {"text_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(), "val_fraction": val_fraction}
    with staging.building(out_dir, job, resumable=False) as stage:  # swapped in whole once written
        write_shard(os.path.join(stage, shard_name(NAME, "val", 0)), ids[split:])
        write_shard(os.path.join(stage, shard_name(NAME, "train", 0)), ids[:split])
        meta = {"tokenizer": "char", "vocab_size": len(chars), "eot_id": None, "chars": chars}
        write_meta(stage, meta)
        counted = val_bytes(stage, meta)[0]  # kept in meta.json too: bits per byte
    return {**meta, "val_bytes": counted}


def main(argv=None):
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--input", help="read this text file instead of downloading")
    parser.add_argument("--out_dir", default=os.path.dirname(os.path.abspath(__file__)))
    args = parser.parse_args(argv)
    if args.input:
        problem = file_problem(args.input)
        if problem:
            raise ConfigError(f"--input {args.input}: {problem}")
        with open(args.input, "rb") as f:
            text = decode_text(f.read(), args.input)  # a binary file or another encoding: one line
        if not text:
            raise DataError(f"--input {args.input} is empty")
    else:
        print(f"downloading {URL}")
        text = download_text(URL, "offline, pass --input path/to/tinyshakespeare.txt (a local copy of the text)")
    meta = prepare(text, args.out_dir)
    print(f"{len(text):,} characters, vocab {meta['vocab_size']}: wrote shards and meta.json to {args.out_dir}")


if __name__ == "__main__":
    exit_on_error(main)
