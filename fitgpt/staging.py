"""
A dataset folder replaced whole: what the data/*/prepare.py scripts write through, and what
train.py checks before it reads one.

A prepare script builds its dataset in out_dir/.partial/ and only swaps it into out_dir once it
is complete, so a dataset folder holds its old dataset, whole, until then, never two mixed. The
swap moves each new file in and removes the old dataset's other files: a kill part-way leaves
out_dir/.swapping, naming both, which train.py refuses in one line and the next prepare run
finishes first. out_dir/.job.json records what decided the dataset's bytes (the input files'
sizes and times, the tokenizer, the sizes asked for): a build that stopped (killed, Ctrl-C, a
tokenizer process that died) resumes from .partial when run again with the same job, and starts
afresh otherwise; a finished dataset of the same job seeds a new build (hard links, no copy), so
a larger --max_tokens continues it. One prepare run at a time holds out_dir (fsutil.hold_folder).
"""

import glob
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from fitgpt.errors import DataError, FitGPTError, RunFailure
from fitgpt.fsutil import LOCK_FILE, atomic_write, fsync_folder, hold_folder
from fitgpt.shards import find_shards, read_meta

PARTIAL, SWAPPING, JOB = ".partial", ".swapping", ".job.json"


def files_identity(paths: list[str]) -> list[list]:
    """[path, size, mtime] of each file: a job's inputs, which must not change for it to resume."""
    return [[os.path.abspath(p), os.path.getsize(p), os.stat(p).st_mtime_ns] for p in paths]


def read_job(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, JOB), encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def dataset_files(folder: str) -> list[str]:
    """The names of the dataset files in folder: shards of either split, meta.json, the
    SentencePiece model it names (and its .vocab) and the job that made them."""
    paths = find_shards(folder, "train") + find_shards(folder, "val")
    names = [os.path.basename(p) for p in paths] + [n for n in ("meta.json", JOB) if os.path.isfile(f"{folder}/{n}")]
    model = (read_meta(folder) or {}).get("model_file") if os.path.isfile(f"{folder}/meta.json") else None
    if model:
        names += [n for n in (model, model.removesuffix(".model") + ".vocab") if os.path.isfile(f"{folder}/{n}")]
    return sorted(set(names))


@contextmanager
def building(out_dir: str, job: dict, resumable: bool = True) -> Iterator[str]:
    """Build a dataset for out_dir in the folder this yields (out_dir/.partial) and swap it in,
    whole, when the block ends. job: what decides the dataset's bytes (JSON-able). A bad input
    (a FitGPTError other than RunFailure) removes the partial build, and out_dir when this made it
    for nothing: the input has to change; a signal or a failure keeps it, to resume (resumable)
    with the same job."""
    created = not os.path.exists(out_dir)
    with hold_folder(out_dir, "out_dir"):
        stage = open_stage(out_dir, job, resumable)
        try:
            yield stage
        except FitGPTError as e:
            if not isinstance(e, RunFailure):
                shutil.rmtree(stage, ignore_errors=True)
                if created and os.listdir(out_dir) == [LOCK_FILE]:
                    os.remove(os.path.join(out_dir, LOCK_FILE))
                    os.rmdir(out_dir)
            raise
        swap_in(out_dir, stage)


def open_stage(out_dir: str, job: dict, resumable: bool) -> str:
    """out_dir/.partial, ready for job: resumed, or new; says when a dataset there will be replaced."""
    finish_swap(out_dir)
    stage = os.path.join(out_dir, PARTIAL)
    if os.path.isdir(stage) and not (resumable and read_job(stage) == job):
        shutil.rmtree(stage)  # another job's, or one that cannot resume: its work is of no use
    if not os.path.isdir(stage):
        start_build(out_dir, stage, job)
    for leftover in glob.glob(os.path.join(stage, "*.tmp.*")) + glob.glob(os.path.join(stage, "tok*.tmp*")):
        os.remove(leftover)  # a temporary file of a killed run: never part of a dataset
    old = [n for n in dataset_files(out_dir) if n != JOB]
    if old and read_job(out_dir) != job:
        print(
            f"{out_dir} holds a dataset ({len(old)} files): it is replaced once the new one is complete "
            f"(stopped before then, it stays as it is)",
            flush=True,
        )
    return stage


def start_build(out_dir: str, stage: str, job: dict) -> None:
    """A new out_dir/.partial for job, seeded with the finished dataset's files (hard links) when
    that dataset came from the same job, e.g. with a smaller --max_tokens."""
    os.makedirs(stage)
    if read_job(out_dir) == job:
        try:
            for name in dataset_files(out_dir):
                os.link(os.path.join(out_dir, name), os.path.join(stage, name))
        except OSError:  # no hard links on this filesystem: build from the start
            shutil.rmtree(stage)
            os.makedirs(stage)
    atomic_write(os.path.join(stage, JOB), lambda f: f.write(json.dumps(job).encode("utf-8")))


def swap_in(out_dir: str, stage: str) -> None:
    """Move the finished dataset in stage into out_dir, replacing the old one (its files that the
    new one lacks are removed), through a marker that lets a killed swap be finished."""
    new = sorted(os.listdir(stage))
    stale = [n for n in dataset_files(out_dir) if n not in new]
    replaced = read_job(out_dir) != read_job(stage) and [n for n in dataset_files(out_dir) if n != JOB]
    marker = json.dumps({"new": new, "stale": stale}).encode("utf-8")
    atomic_write(os.path.join(out_dir, SWAPPING), lambda f: f.write(marker))
    finish_swap(out_dir)
    if replaced:
        print(f"replaced the dataset in {out_dir} ({len(replaced)} files) with the new one", flush=True)


def finish_swap(out_dir: str) -> None:
    """Finish a swap that a kill interrupted (nothing to do without out_dir/.swapping)."""
    path = os.path.join(out_dir, SWAPPING)
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        swap = json.load(f)
    stage = os.path.join(out_dir, PARTIAL)
    for name in swap["new"]:
        if os.path.exists(os.path.join(stage, name)):
            os.replace(os.path.join(stage, name), os.path.join(out_dir, name))
    for name in swap["stale"]:
        if os.path.exists(os.path.join(out_dir, name)):
            os.remove(os.path.join(out_dir, name))
    fsync_folder(out_dir)
    shutil.rmtree(stage, ignore_errors=True)
    os.remove(path)
    fsync_folder(out_dir)


def swapping(data_dir: str) -> bool:
    """Whether a prepare run was killed while it swapped a new dataset into data_dir."""
    return os.path.exists(os.path.join(data_dir, SWAPPING))


def check_whole(data_dir: str) -> None:
    """Refuse a dataset folder that a prepare run left half-swapped, or holds only a partial build."""
    if swapping(data_dir):
        raise DataError(
            f"{data_dir}: a prepare.py run was replacing this dataset and stopped part-way; run the same prepare "
            f"command again to finish it"
        )
    if os.path.isdir(os.path.join(data_dir, PARTIAL)) and not find_shards(data_dir, "train"):
        raise DataError(
            f"{data_dir}: its dataset is not finished (a prepare.py run stopped part-way; its work so far is in "
            f"{os.path.join(data_dir, PARTIAL)}); run the same prepare command again to finish it"
        )
