"""
Checkpoint I/O, shared by train.py, sample.py, bench.py and export.py.

A checkpoint is a dict holding at least `model` (the un-compiled model's state dict) and
`model_args` (GPTConfig fields). It is written atomically and read with
torch.load(weights_only=True), which refuses arbitrary pickled objects.
"""
import os
import pickle
import zipfile

import torch

from fsutil import atomic_write
from model import GPT, GPTConfig


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and what to do."""


def save_checkpoint(path, checkpoint):
    atomic_write(path, lambda f: torch.save(checkpoint, f))


def load_checkpoint(path, map_location="cpu"):
    if not os.path.exists(path):
        raise CheckpointError(f"{path}: no checkpoint there; train first, or set init_from='scratch'")
    if not zipfile.is_zipfile(path):  # torch.save writes a zip archive; anything else is not ours
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt (not a torch.save "
                              f"archive); use an older ckpt_*.pt or train again")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: refused, it holds pickled objects beyond tensors and plain "
                              f"containers ({first_line}); only load checkpoints you trust") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile) as e:
        raise CheckpointError(f"{path}: not a readable checkpoint, truncated or corrupt "
                              f"({type(e).__name__}); use an older ckpt_*.pt or train again") from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint or "model_args" not in checkpoint:
        raise CheckpointError(f"{path}: not a fitgpt checkpoint (no 'model' and 'model_args' entries)")
    return checkpoint


def clean_state_dict(state_dict):
    """Strip the prefixes torch.compile ('_orig_mod.') and DDP ('module.') add to parameter names."""
    cleaned = {}
    for key, value in state_dict.items():
        for prefix in ("_orig_mod.", "module."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        cleaned[key] = value
    return cleaned


def model_from_checkpoint(checkpoint, path="checkpoint"):
    """Build a GPT from a loaded checkpoint dict and fill in its weights."""
    try:
        config = GPTConfig(**checkpoint["model_args"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its model_args do not make a valid GPTConfig ({e})") from None
    model = GPT(config)
    model.load_state_dict(clean_state_dict(checkpoint["model"]))
    return model
