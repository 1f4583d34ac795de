"""
Batches of (inputs, targets) from a dataset folder of token shards, used by train.py and bench.py,
and a run's dataset (run_data): its folder, prepared first when it is missing, meta.json, loaders.

Opening a dataset reads only the shards' headers, and a batch reads only its B*(T+1) tokens, with
pread (a shard cut short under a running job is then one line, where a memory map would be
SIGBUS); from the start-up check on (check_vocab), every batch's ids are checked against the
vocabulary, so a damaged shard is one line naming it and the position. Two orders:
  'random'     - each row is a window at a random offset of a random shard, shards weighted by
                 size (nanoGPT), drawn from one seeded stream.
  'sequential' - a seeded permutation of the shards, each read front to back in contiguous
                 windows (llm.c).
Either way the data is one stream of micro-batches, the same for any number of processes: rank r
of W reads micro-batches r, r+W, r+2W, ... (skipping the others' draws, which costs only random
numbers), so an optimizer step of gradient_accumulation_steps micro-batches (a multiple of W)
trains on exactly the rows one process would, and ranks never share a micro-batch. The position
(state_dict / load_state_dict, in checkpoints) is that of the stream at a step boundary, so a
run can resume on another number of processes.
"""

import dataclasses
import os
import subprocess
import sys
from dataclasses import dataclass

import numpy as np
import torch

from fitgpt import staging
from fitgpt.errors import ConfigError, DataError
from fitgpt.settings import TrainSettings
from fitgpt.shards import REPO, data_dir_of, find_shards, open_tokens, read_meta


class TokenLoader:
    def __init__(
        self,
        data_dir: str,
        split: str,
        batch_size: int,
        block_size: int,
        data_order: str = "random",
        *,
        seed: int = 1337,
        rank: int = 0,
        world_size: int = 1,
        device: str = "cpu",
    ):
        self.paths = find_shards(data_dir, split)
        if not self.paths:
            raise DataError(f"{data_dir}: no {split} shards (expected files like *_{split}_000000.bin)")
        self.split, self.data_order = split, data_order
        self.batch_size, self.block_size = batch_size, block_size
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.device = device
        names = sorted({os.path.basename(p).rsplit(f"_{split}_", 1)[0] for p in self.paths})
        if len(names) > 1:
            raise DataError(
                f"{data_dir}: holds the {split} shards of {len(names)} datasets ({', '.join(names)}); a dataset "
                f"folder holds one: move the others' shards to folders of their own"
            )
        self.shards = [open_tokens(p) for p in self.paths]  # memory maps, for check_vocab
        # batches are read with pread, not from the maps: a shard cut short under a running job is
        # then a short read and one line, where a map would kill the process with SIGBUS
        self.files = [open(p, "rb") for p in self.paths]
        self.offsets = [s.offset if isinstance(s, np.memmap) else 0 for s in self.shards]
        self.vocab_size = None  # set by check_vocab: from then on every batch is checked against it
        self.sizes = np.array([len(s) for s in self.shards], dtype=np.int64)
        self.num_tokens = int(self.sizes.sum())
        # a window needs block_size + 1 tokens (the targets are the inputs shifted by one)
        self.windows = np.maximum(self.sizes - block_size, 0)  # valid start offsets per shard
        self.rows_per_shard = np.maximum(self.sizes - 1, 0) // block_size
        if self.windows.sum() == 0:
            biggest = self.paths[int(self.sizes.argmax())]
            raise DataError(
                f"{biggest}: every {split} shard is shorter than block_size+1 = {block_size + 1} "
                f"tokens (largest has {int(self.sizes.max())}); use a smaller block_size"
            )
        self.pin = str(device).startswith("cuda")
        self.reset()

    def check_vocab(self, vocab_size: int, sample_tokens: int = 16384) -> int:
        """Refuse shards holding token ids >= vocab_size, checked now on the start, middle and end
        of each shard (reading everything would take minutes on a large dataset), and from now on
        in every batch read (next_batch); returns the largest id seen."""
        self.vocab_size = vocab_size
        largest = 0
        for path, shard in zip(self.paths, self.shards):
            n = len(shard)
            for start in sorted({0, max(0, n // 2 - sample_tokens // 2), max(0, n - sample_tokens)}):
                chunk = np.asarray(shard[start : start + sample_tokens])
                largest = max(largest, int(chunk.max()) if chunk.size else 0)
                if largest >= vocab_size:
                    at = int(np.argmax(chunk >= vocab_size))
                    raise outside_vocabulary(path, int(chunk[at]), start + at, vocab_size)
        return largest

    def reset(self) -> None:
        self.rng = np.random.Generator(np.random.PCG64([self.seed, 0]))  # random order's stream
        self.epoch, self.shard_pos, self.row = 0, 0, 0  # sequential order's position in the stream
        self.position = 0  # micro-batches of the stream drawn so far (by this rank or skipped)
        self.batches_read = 0  # micro-batches this rank has read
        self._order = self._epoch_order(0)

    def _epoch_order(self, epoch):
        usable = np.flatnonzero(self.rows_per_shard > 0)
        return np.random.Generator(np.random.PCG64([self.seed, epoch])).permutation(usable)

    def _draw(self) -> list[tuple[int, int]]:
        """The (shard, start) windows of the stream's next micro-batch."""
        self.position += 1
        if self.data_order == "random":
            shard_ids = self.rng.choice(len(self.shards), size=self.batch_size, p=self.windows / self.windows.sum())
            starts = (self.rng.random(self.batch_size) * self.windows[shard_ids]).astype(np.int64)
            return [(int(i), int(s)) for i, s in zip(shard_ids, starts)]
        windows = []  # row j of a shard starts at token j * block_size
        for _ in range(self.batch_size):
            shard = int(self._order[self.shard_pos])
            windows.append((shard, self.row * self.block_size))
            self.row += 1
            if self.row == self.rows_per_shard[shard]:
                self.row, self.shard_pos = 0, self.shard_pos + 1
                if self.shard_pos == len(self._order):
                    self.epoch, self.shard_pos = self.epoch + 1, 0
                    self._order = self._epoch_order(self.epoch)
        return windows

    def _skip_to(self, position: int) -> None:
        while self.position < position:
            self._draw()

    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) as int64 tensors of shape (batch_size, block_size) on the loader's device: this
        rank's next micro-batch of the stream."""
        self._skip_to(self.batches_read * self.world_size + self.rank)
        windows = self._draw()
        self.batches_read += 1
        rows = np.stack([self._read(i, start) for i, start in windows]).astype(np.int64)
        if self.vocab_size is not None and (rows.max() >= self.vocab_size or rows.min() < 0):
            self._refuse(rows, windows)
        batch = torch.from_numpy(rows)
        if self.pin:  # page-locked memory lets the copy to the GPU overlap with compute
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True)
        return batch[:, :-1], batch[:, 1:]

    def _read(self, shard: int, start: int) -> np.ndarray:
        """block_size + 1 tokens of a shard from token start on."""
        dtype, path = self.shards[shard].dtype, self.paths[shard]
        want = (self.block_size + 1) * dtype.itemsize
        data = os.pread(self.files[shard].fileno(), want, self.offsets[shard] + start * dtype.itemsize)
        if len(data) < want:
            raise DataError(
                f"{path}: the shard changed size while this run read it (now {os.path.getsize(path):,} bytes, it "
                f"held {len(self.shards[shard]):,} tokens); something rewrote it in place: prepare the dataset "
                f"again (its prepare.py replaces shards whole), then resume"
            )
        return np.frombuffer(data, dtype)

    def _refuse(self, rows: np.ndarray, windows: list[tuple[int, int]]) -> None:
        """The one line for a batch holding a token id outside the vocabulary: the shard and position."""
        row, column = (int(i) for i in np.argwhere((rows >= self.vocab_size) | (rows < 0))[0])
        shard, start = windows[row]
        raise outside_vocabulary(self.paths[shard], int(rows[row, column]), start + column, self.vocab_size)

    def state_dict(self) -> dict:
        """The stream's position after the micro-batches all ranks have read: the same on every
        rank at a step boundary, and valid for any number of ranks."""
        self._skip_to(self.batches_read * self.world_size)
        return {
            "rng": self.rng.bit_generator.state,
            "epoch": self.epoch,
            "shard_pos": self.shard_pos,
            "row": self.row,
            "position": self.position,
            "batch_size": self.batch_size,
            "data_order": self.data_order,
            "seed": self.seed,
        }

    def load_state_dict(self, state: dict) -> None:
        saved = (state["data_order"], state["seed"], state["batch_size"])
        if saved != (self.data_order, self.seed, self.batch_size):
            raise ConfigError(
                f"the checkpoint's data position is for data_order={saved[0]!r}, seed={saved[1]}, batch_size="
                f"{saved[2]}; resume with the same settings (gradient_accumulation_steps and the number of "
                f"GPUs may change)"
            )
        if state["position"] % self.world_size:
            raise ConfigError(
                f"the checkpoint stopped after {state['position']} micro-batches, which "
                f"{self.world_size} processes cannot share evenly; resume with a world size dividing it"
            )
        self.rng.bit_generator.state = state["rng"]
        self.epoch, self.shard_pos, self.row = state["epoch"], state["shard_pos"], state["row"]
        self.position = state["position"]
        self.batches_read = self.position // self.world_size
        self._order = self._epoch_order(self.epoch)


def outside_vocabulary(path: str, token: int, position: int, vocab_size: int) -> DataError:
    return DataError(
        f"{path}: token id {token} at position {position:,} is outside the model's vocabulary (vocab_size "
        f"{vocab_size}): the shard is damaged (prepare the dataset again) or was made with another tokenizer "
        f"(set vocab_size, or use a dataset of the model's tokenizer)"
    )


@dataclass
class RunData:
    """A run's dataset: its folder, its meta.json (None without one), the training loader and the
    evaluation loaders of both splits, which always read the same random windows (their own seed,
    restarted each time), so evaluations compare."""

    path: str
    meta: dict | None
    train: TokenLoader
    evals: dict[str, TokenLoader]

    @property
    def split_tokens(self) -> tuple[int, int]:
        return self.evals["train"].num_tokens, self.evals["val"].num_tokens


def run_data(s: TrainSettings, rank: int = 0, world_size: int = 1, device: str = "cpu") -> RunData:
    """The dataset of a run with these settings, on this rank: prepared first when it is missing
    (auto_prepare), then opened."""
    path = prepare_if_missing(dataclasses.asdict(s))
    place = dict(rank=rank, world_size=world_size, device=device)
    train = TokenLoader(path, "train", s.batch_size, s.block_size, s.data_order, seed=s.seed, **place)
    evals = {
        split: TokenLoader(path, split, s.batch_size, s.block_size, seed=s.seed + 1, **place)
        for split in ("train", "val")
    }
    return RunData(path, read_meta(path), train, evals)


def prepare_if_missing(config: dict) -> str:
    """The run's dataset folder; with auto_prepare, data/<dataset>/prepare.py runs first when it
    has no train shards (or a prepare run stopped part-way). A missing dataset, or one a prepare
    run left unfinished, is one line naming the command that makes it."""
    path = data_dir_of(config)
    if find_shards(path, "train") and not staging.swapping(path):
        return path
    dataset = config.get("dataset", "")
    prepare = os.path.join(REPO, "data", dataset, "prepare.py")
    if config.get("auto_prepare") and not config.get("data_dir") and os.path.exists(prepare):
        print(f"dataset {dataset!r} not prepared yet: running {prepare}", flush=True)
        result = subprocess.run([sys.executable, prepare], stderr=subprocess.PIPE, text=True)
        if result.returncode != 0:  # its own one-line error, inside ours
            last = (result.stderr.strip().splitlines() or ["it failed"])[-1].removeprefix("error: ")
            raise DataError(f"dataset {dataset!r} could not be prepared by {os.path.relpath(prepare)}: {last}")
        sys.stderr.write(result.stderr)
        return path
    staging.check_whole(path)
    if dataset == "fineweb_edu":
        hint = "run: python data/fineweb/prepare.py --dataset fineweb-edu"
    elif os.path.exists(prepare) and not config.get("data_dir"):
        hint = f"run: python {os.path.relpath(prepare)}"
    else:
        hint = "prepare it with a data/*/prepare.py script (data/text/prepare.py for your own files), or set data_dir"
    raise DataError(f"no train shards in {path} (or the folder does not exist); {hint}")
