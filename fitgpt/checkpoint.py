"""
Everything a checkpoint holds and how it is written, found and read back.

A training checkpoint is a dict: `model` (the un-compiled model's state dict), `model_args`
(GPTConfig fields), `optimizer`, `scaler`, progress (`iter_num`, `tokens_seen`, `best_val_loss`,
`skipped_batches`, `elapsed_s`), `config` (the run's settings), `loader` (the data stream's position,
the same on every rank at a step boundary), `rng_ranks` (every rank's Python, numpy, torch and CUDA
generator states), `tokenizer` (the dataset's tokenizer identity) and `versions`. It is written atomically
(temporary file, fsync, rename) and read with torch.load(weights_only=True), which refuses
arbitrary pickled objects. out_dir/ckpt.pt is the latest; keep_last also keeps ckpt_<iter>.pt.

Verified on every load: torch.save writes a zip archive that stores a CRC-32 of every record (each
tensor's bytes, and the pickle that names them), but torch.load never checks them, so a damaged
file would load. load_checkpoint checks every one first (zlib's CRC-32 runs at several GB/s:
benchmarks/checkpoint_bench.py).
"""

import dataclasses
import errno
import glob
import math
import os
import pickle
import random
import re
import sys
import time
import zipfile
from typing import IO

import numpy as np
import torch

from fitgpt import distributed
from fitgpt.architecture import GPTConfig
from fitgpt.errors import CheckpointError, ConfigError, RunFailure, first_line
from fitgpt.formatting import size_text
from fitgpt.fsutil import atomic_write, free_bytes, fsync_folder, hold_folder
from fitgpt.loader import TokenLoader
from fitgpt.settings import HF_NAMES, TrainSettings
from fitgpt.shards import dataset_meta, read_meta
from fitgpt.tokenization import describe_tokenizer, tokenizer_identity
from model import GPT


@dataclasses.dataclass(frozen=True)
class Progress:
    """How far a run has come; stored as top-level keys of its checkpoints. Frozen: train.py's loop
    is the one place that advances it (dataclasses.replace), once per iteration."""

    iter_num: int = 0
    tokens_seen: int = 0
    best_val_loss: float = math.inf
    skipped_batches: int = 0
    elapsed_s: float = 0.0  # wall time since the run started, every resumed part included


def save_checkpoint(path: str, checkpoint: dict) -> None:
    """Write a checkpoint atomically; refused at once (ENOSPC) when its folder has less free space
    than it needs, rather than failing part-way through torch's writer."""
    if free_bytes(os.path.dirname(path) or ".") < checkpoint_bytes(checkpoint):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    atomic_write(path, lambda f: torch.save(checkpoint, f))


def checkpoint_bytes(checkpoint: dict) -> int:
    """About the size of a checkpoint on disk: its tensors' storages (a shared one counted once),
    plus room for the pickle and the archive's records."""
    storages, stack = {}, [checkpoint]
    while stack:
        item = stack.pop()
        if isinstance(item, torch.Tensor):
            storage = item.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
    return sum(storages.values()) + 2**16


def older_copies(path: str) -> list[str]:
    """The rotated ckpt_<iter>.pt copies beside a checkpoint, newest first, not counting it."""
    copies = glob.glob(os.path.join(os.path.dirname(path) or ".", "ckpt_*.pt"))
    copies = [c for c in copies if os.path.basename(c)[5:-3].isdigit() and not os.path.samefile(c, path)]
    return sorted(copies, key=lambda c: int(os.path.basename(c)[5:-3]), reverse=True)


def what_to_use_instead(path: str) -> str:
    copies = older_copies(path) if os.path.exists(path) else []
    return f"use the previous checkpoint {copies[0]}" if copies else "train again (keep_last=N keeps older copies)"


def verify_checksums(path: str) -> None:
    """Check every record of a torch.save archive against the CRC-32 stored when it was written."""
    with zipfile.ZipFile(path) as archive:
        records = archive.infolist()
        if not any(record.CRC for record in records):
            return  # written with torch.utils.serialization.config.save.compute_crc32 off
        for record in records:
            try:
                with archive.open(record) as f:  # zipfile checks the CRC-32 as it reaches the end
                    while f.read(1 << 24):
                        pass
            except zipfile.BadZipFile:
                name = record.filename.split("/", 1)[-1]
                raise CheckpointError(
                    f"{path}: damaged: its record {name} no longer matches the checksum stored when it was saved "
                    f"(bytes changed on disk); {what_to_use_instead(path)}"
                ) from None


def load_checkpoint(path: str, map_location: str = "cpu") -> dict:
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no checkpoint there; train first, or set init_from='scratch'")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(
            f"{path}: not a readable checkpoint, truncated or corrupt (not a torch.save archive); "
            f"{what_to_use_instead(path)}"
        )
    verify_checksums(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{path}: refused, it holds pickled objects beyond tensors and plain "
            f"containers ({first_line(e)}); only load checkpoints you trust"
        ) from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(
            f"{path}: not a readable checkpoint, truncated or corrupt ({type(e).__name__}); {what_to_use_instead(path)}"
        ) from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "model_args" not in checkpoint:
        raise CheckpointError(f"{path}: not a fitgpt checkpoint (no 'model' and 'model_args' entries)")
    return checkpoint


def clean_state_dict(state_dict: dict) -> dict:
    """Strip the prefixes torch.compile ('_orig_mod.') and DDP ('module.') add to parameter names."""
    cleaned = {}
    for key, value in state_dict.items():
        for prefix in ("_orig_mod.", "module."):
            while key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def model_from_checkpoint(checkpoint: dict, path: str = "checkpoint") -> GPT:
    """Build a GPT from a loaded checkpoint dict and fill in its weights."""
    try:
        config = GPTConfig(**checkpoint["model_args"])
    except (TypeError, ConfigError) as e:
        raise CheckpointError(f"{path}: its model_args do not make a valid GPTConfig ({e})") from None
    model = GPT(config)
    model.load_state_dict(clean_state_dict(checkpoint["model"]))
    return model


def capture_rng_state() -> dict:
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (np_state[0], np_state[1].tolist()) + tuple(np_state[2:]),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np_state = state["numpy"]
    np.random.set_state((np_state[0], np.array(np_state[1], dtype=np.uint32)) + tuple(np_state[2:]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def library_versions() -> dict:
    return {"torch": str(torch.__version__), "numpy": np.__version__, "python": sys.version.split()[0]}


def write_checkpoint(out_dir: str, checkpoint: dict, keep_last: int = 0) -> str:
    """Write ckpt.pt atomically; with keep_last, also ckpt_<iter>.pt, pruning older copies."""
    path = os.path.join(out_dir, "ckpt.pt")
    save_checkpoint(path, checkpoint)
    if keep_last > 0:
        save_checkpoint(os.path.join(out_dir, f"ckpt_{checkpoint['iter_num']}.pt"), checkpoint)
        copies = [f for f in os.listdir(out_dir) if f.startswith("ckpt_") and f.endswith(".pt")]
        copies.sort(key=lambda f: int(f[5:-3]) if f[5:-3].isdigit() else -1)
        for old in copies[:-keep_last]:
            os.remove(os.path.join(out_dir, old))
    return path


def save_failure_message(out_dir: str, error: BaseException, needed: int) -> str:
    """One line for a checkpoint of about needed bytes that could not be written: why, the free
    space, what is intact. A full disk is named as such, whatever torch's writer said about it."""
    free = free_bytes(out_dir)
    if free < needed or (isinstance(error, OSError) and error.errno == errno.ENOSPC):
        reason = f"no space left on device: a checkpoint needs about {size_text(needed)}"
    elif isinstance(error, OSError):
        reason = error.strerror or str(error)
    else:
        reason = f"torch.save failed: {str(error).strip().splitlines()[-1]}"
    latest = os.path.join(out_dir, "ckpt.pt")
    intact = f"{latest} is intact" if os.path.exists(latest) else "no earlier checkpoint was written"
    return (
        f"could not write a checkpoint in {out_dir} ({reason}; {size_text(free)} free there); {intact}; "
        f"free disk space or choose another out_dir"
    )


class RunCheckpoints:
    """A run's checkpoints in out_dir of its model, optimizer, scaler and data position: restore()
    puts a resumed run's back; save() gathers the full state (every rank joins), refuses weights
    holding NaN/Inf, writes on rank 0 and reports a failed write as one line (the previous
    checkpoint is intact). tokenizer: the dataset's tokenization.tokenizer_identity."""

    def __init__(
        self,
        s: TrainSettings,
        dist: distributed.Distributed,
        tokenizer: dict | None,
        *,
        model: GPT,
        optimizer: torch.optim.Optimizer,
        scaler: torch.amp.GradScaler,
        loader: TokenLoader,
    ):
        self.out_dir, self.keep_last, self.settings = s.out_dir, s.keep_last, dataclasses.asdict(s)
        self.dist, self.tokenizer = dist, tokenizer
        self.model, self.optimizer, self.scaler, self.loader = model, optimizer, scaler, loader
        self.last_path = None  # of the last checkpoint written

    def restore(self, checkpoint: dict) -> Progress:
        """Put the optimizer, scaler, the data position and the RNGs back, on any number of ranks
        (the model's weights are back already: model_from_checkpoint); returns the progress."""
        distributed.load_optimizer_state(self.model, self.optimizer, checkpoint["optimizer"], self.dist)
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.loader.load_state_dict(checkpoint["loader"])
        # each rank its own RNG states (dropout masks); a rank the checkpoint had none for (a run
        # resumed on more ranks) keeps the fresh seed it was given
        states = checkpoint["rng_ranks"]
        if self.dist.rank < len(states):
            restore_rng_state(states[self.dist.rank])
        return Progress(**{f.name: checkpoint[f.name] for f in dataclasses.fields(Progress)})

    def save(self, progress: Progress, reason: str) -> None:
        """Write ckpt.pt (every rank must call this): the full, unsharded states
        (distributed.full_state), the progress, the settings, the stream's data position (the same
        on every rank at a step boundary, so rank 0's), every rank's RNG states, the tokenizer."""
        model_state, optimizer_state = distributed.full_state(self.model, self.optimizer, self.dist)  # every rank joins
        rng_states = distributed.gather_objects(capture_rng_state(), self.dist)
        if not self.dist.master:
            return
        if not all(torch.isfinite(t).all() for t in model_state.values() if t.is_floating_point()):
            raise RunFailure(
                f"iteration {progress.iter_num}: weights hold NaN/Inf; not writing a checkpoint "
                f"(the last good one in {self.out_dir} is untouched)"
            )
        checkpoint = {
            "model": model_state,
            "optimizer": optimizer_state,
            "scaler": self.scaler.state_dict(),
            "model_args": self.model.config.to_dict(),
            **dataclasses.asdict(progress),
            "config": self.settings,
            "loader": self.loader.state_dict(),
            "rng_ranks": rng_states,
            "tokenizer": self.tokenizer,
            "versions": library_versions(),
        }
        try:
            path = write_checkpoint(self.out_dir, checkpoint, self.keep_last)
        except (OSError, RuntimeError) as e:  # torch's writer raises RuntimeError on a full disk
            raise RunFailure(save_failure_message(self.out_dir, e, checkpoint_bytes(checkpoint))) from None
        self.last_path = path
        print(f"saved {path} at iteration {progress.iter_num} ({reason})", flush=True)


RUN_FILES = ("ckpt.pt", "config.json", "metrics.jsonl")  # with the ckpt_<iter>.pt copies: what overwrite moves aside


def claim_out_dir(out_dir: str, init_from: str, overwrite: bool) -> IO:
    """Lock out_dir for this run (fsutil.hold_folder: one run per folder), refuse a new run into a
    folder holding a checkpoint unless overwrite, which moves the old run's files into
    out_dir/replaced-<time>/ (nothing is deleted), and remove the temporary files of saves that
    were killed (no other run can be writing them: it would hold the lock). Returns the lock:
    close it when the run ends."""
    lock = hold_folder(out_dir, "out_dir")
    try:
        names = os.listdir(out_dir)
        checkpoints = sorted(n for n in names if n == "ckpt.pt" or (n.startswith("ckpt_") and n.endswith(".pt")))
        if checkpoints and init_from != "resume":
            if not overwrite:
                raise ConfigError(
                    f"out_dir {out_dir} already holds a run ({', '.join(checkpoints[:3])}); continue it with "
                    f"--init_from=resume, or start a new one there with --overwrite=True (the old run's files "
                    f"are moved to {out_dir}/replaced-<time>/, not deleted)"
                )
            aside = move_aside(out_dir, [n for n in names if n in RUN_FILES or n in checkpoints])
            print(f"overwrite=True: the previous run's files are kept in {aside}", flush=True)
        for name in names:  # an interrupted atomic write (fsutil.atomic_write); the file it replaced is intact
            if re.fullmatch(r"(ckpt(_\d+)?\.pt|config\.json|metrics\.jsonl)\.tmp\.\d+", name):
                os.remove(os.path.join(out_dir, name))
    except BaseException:
        lock.close()
        raise
    return lock


def move_aside(out_dir: str, names: list[str]) -> str:
    """Move the files names of out_dir into a new folder out_dir/replaced-<time>; returns it."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside, n = os.path.join(out_dir, f"replaced-{stamp}"), 1
    while os.path.exists(aside):
        n += 1
        aside = os.path.join(out_dir, f"replaced-{stamp}-{n}")
    os.mkdir(aside)
    for name in names:
        os.replace(os.path.join(out_dir, name), os.path.join(aside, name))
    fsync_folder(out_dir)
    return aside


def resolve_resume(settings: TrainSettings, explicit: dict) -> tuple[TrainSettings, dict | None]:
    """(settings, checkpoint or None). On resume the checkpoint's settings come back, overridden by
    those given explicitly; model-shape settings given explicitly must match the checkpoint."""
    if settings.init_from != "resume":
        return settings, None
    path = os.path.join(settings.out_dir, "ckpt.pt")
    checkpoint = load_checkpoint(path)
    names = {f.name for f in dataclasses.fields(settings)}
    # a resumed run stays in the folder it was read from, and overwrite belonged to its start
    saved = {k: v for k, v in checkpoint.get("config", {}).items() if k in names - {"out_dir", "overwrite"}}
    merged = {**dataclasses.asdict(settings), **saved, **explicit, "init_from": "resume"}
    shape = checkpoint["model_args"]
    mismatched = [
        f"{k}={explicit[k]!r} (checkpoint has {shape[k]!r})"
        for k in explicit
        if k in shape and explicit[k] != shape[k] and not (k == "n_kv_heads" and explicit[k] is None)
    ]
    if mismatched:
        raise ConfigError(
            f"{path}: the config's model shape differs from the checkpoint: "
            f"{', '.join(mismatched)}; use the checkpoint's settings or a new out_dir"
        )
    return type(settings)(**merged), checkpoint


def start_tokenizer(init_from: str, checkpoint: dict | None, out_dir: str) -> tuple[str, dict] | None:
    """(what names it, the tokenizer identity) of the weights a run starts from: its checkpoint's
    on resume, GPT-2's for a GPT-2 model, an exported Hugging Face folder's meta.json; None when
    unknown (a new model, a llama2.c file)."""
    if checkpoint is not None:
        return os.path.join(out_dir, "ckpt.pt"), checkpoint["tokenizer"]
    if init_from in HF_NAMES:
        return init_from, tokenizer_identity(None, "")
    if os.path.isdir(init_from) and os.path.isfile(os.path.join(init_from, "meta.json")):
        return init_from, tokenizer_identity(read_meta(init_from), init_from)
    return None


def check_tokenizer(s: TrainSettings, checkpoint: dict | None, data_dir: str, identity: dict) -> None:
    """Refuse to resume or fine-tune (s.init_from) on a dataset whose token ids mean something else."""
    start = start_tokenizer(s.init_from, checkpoint, s.out_dir)
    if start is not None and start[1] != identity:
        raise ConfigError(
            f"{data_dir}: its tokenizer ({describe_tokenizer(identity)}) is not the one {start[0]} was trained "
            f"with ({describe_tokenizer(start[1])}), so its token ids mean other text; use a dataset made with "
            f"that tokenizer, or train a new model on this one"
        )


def training_dataset(checkpoint: dict, path: str) -> tuple[str, dict | None]:
    """(data_dir, meta.json or None) of the dataset a checkpoint was trained on, for its tokenizer;
    refused when that folder now holds data of another tokenizer."""
    data_dir, meta = dataset_meta(checkpoint.get("config", {}))
    recorded = checkpoint.get("tokenizer")
    if recorded and os.path.isdir(data_dir) and tokenizer_identity(meta, data_dir) != recorded:
        raise CheckpointError(
            f"{path} was trained with the tokenizer {describe_tokenizer(recorded)}, but its dataset folder "
            f"{data_dir} now holds {describe_tokenizer(tokenizer_identity(meta, data_dir))}; restore that dataset "
            f"(or its meta.json) to decode the model's tokens"
        )
    return data_dir, meta
