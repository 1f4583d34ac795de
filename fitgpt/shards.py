"""
Token shards on disk: the one format every data script writes and every reader uses.

Layout (llm.c / modded-nanogpt .bin, so their published FineWeb shards load unchanged):
    header: 256 little-endian int32 = [MAGIC, VERSION, token_count, 0, ...]   (1024 bytes)
    body:   token_count little-endian uint16 token ids
Also read: nanoGPT's headerless train.bin/val.bin and build-nanogpt's .npy shards.

A dataset is a folder holding <name>_val_000000.bin, <name>_train_000000.bin, ... and meta.json
(tokenizer name, vocab_size, eot_id; the character table for char-level data).
"""

import glob
import json
import os

import numpy as np

from fitgpt.errors import DataError
from fitgpt.fsutil import atomic_write

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # data/<name> folders live here
MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")


def write_shard(path: str | os.PathLike, tokens) -> None:
    """Write token ids (any integer array-like, all < 65536) as one shard, atomically."""
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() >= 2**16):
        raise DataError(f"{path}: token ids must be in [0, 65535] to be stored as uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[:3] = (MAGIC, VERSION, tokens.size)

    def write(f):
        f.write(header.tobytes())
        f.write(memoryview(np.ascontiguousarray(tokens, dtype=TOKEN_DTYPE)))  # no extra copy of the data

    atomic_write(path, write)


def read_header(path: str | os.PathLike) -> int:
    """Check a .bin shard's header and size; return its token count."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header = np.frombuffer(f.read(HEADER_BYTES), dtype="<i4")
    except OSError as e:
        raise DataError(f"{path}: cannot read shard ({e.strerror})") from None
    if header.size < 3:
        raise DataError(f"{path}: file is {size} bytes, too short for the {HEADER_BYTES}-byte shard header")
    if header[0] != MAGIC:
        raise DataError(f"{path}: bad magic number {header[0]} (expected {MAGIC}); not a token shard")
    if header[1] != VERSION:
        raise DataError(f"{path}: unsupported shard version {header[1]} (expected {VERSION})")
    count = int(header[2])
    expected = HEADER_BYTES + 2 * count
    if size != expected:
        raise DataError(
            f"{path}: file is {size} bytes but its header promises {count} tokens "
            f"({expected} bytes); the shard is truncated or corrupt, prepare it again"
        )
    return count


def open_tokens(path: str | os.PathLike) -> np.ndarray:
    """Memory-map a token file as a read-only uint16 array, whatever its format; nothing is read
    into RAM until it is indexed."""
    path = os.fspath(path)
    if path.endswith(".npy"):
        try:
            arr = np.load(path, mmap_mode="r")
        except (OSError, ValueError) as e:
            raise DataError(f"{path}: not a readable .npy token file ({e})") from None
        if arr.ndim != 1 or arr.dtype.kind not in "ui":
            raise DataError(f"{path}: expected a 1-D integer array, got {arr.dtype} of shape {arr.shape}")
        return arr
    if os.path.basename(path) in ("train.bin", "val.bin") and not _has_magic(path):
        size = os.path.getsize(path)  # nanoGPT's headerless uint16 stream
        if size % 2:
            raise DataError(f"{path}: headerless uint16 file has an odd size ({size} bytes); it is truncated")
        return np.memmap(path, dtype=TOKEN_DTYPE, mode="r")
    count = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=TOKEN_DTYPE)
    return np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(count,))


def _has_magic(path):
    with open(path, "rb") as f:
        first = f.read(4)
    return len(first) == 4 and int.from_bytes(first, "little") == MAGIC


def shard_name(name: str, split: str, index: int) -> str:
    return f"{name}_{split}_{index:06d}.bin"


def find_shards(data_dir: str | os.PathLike, split: str) -> list[str]:
    """Sorted token files of one split ('train' or 'val') in a dataset folder."""
    data_dir = os.fspath(data_dir)
    paths = sorted(glob.glob(os.path.join(data_dir, f"*_{split}_*.bin")))
    paths += sorted(glob.glob(os.path.join(data_dir, f"*_{split}_*.npy")))
    legacy = os.path.join(data_dir, f"{split}.bin")
    if not paths and os.path.exists(legacy):
        paths = [legacy]
    return paths


def write_meta(data_dir: str, meta: dict) -> None:
    text = json.dumps(meta, indent=1, ensure_ascii=False).encode("utf-8")
    atomic_write(os.path.join(data_dir, "meta.json"), lambda f: f.write(text))


def read_meta(data_dir: str) -> dict | None:
    """The dataset's meta.json as a dict, or None when the folder has none (e.g. llm.c shards,
    which are GPT-2 tokens)."""
    path = os.path.join(data_dir, "meta.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable meta.json ({e})") from None


def data_dir_of(config: dict) -> str:
    """The dataset folder named by a run's settings (a dict with 'data_dir' and 'dataset'):
    data_dir, else data/<dataset> in this repository."""
    return config.get("data_dir") or os.path.join(REPO, "data", config.get("dataset", ""))


def dataset_meta(config: dict) -> tuple[str, dict | None]:
    """(data_dir, meta.json dict or None) of a run's dataset; None too when the folder is gone."""
    data_dir = data_dir_of(config)
    return data_dir, (read_meta(data_dir) if os.path.isdir(data_dir) else None)
