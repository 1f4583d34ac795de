"""Never lose a run: one run per out_dir, no silent overwrite, metrics only appended, datasets
whole or refused, every bad token id and bad file one line."""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

import sample
import train
from conftest import ROOT, as_args, cli, load_script, tiny_settings
from fitgpt import checkpoint, errors, fsutil, staging
from fitgpt.checkpoint import write_checkpoint
from fitgpt.errors import ConfigError, DataError
from fitgpt.fsutil import hold_folder
from fitgpt.loader import TokenLoader
from fitgpt.runfiles import MetricsLog
from fitgpt.shards import HEADER_BYTES, read_meta

SHORT = dict(max_iters=4, eval_interval=4, eval_iters=1)


def one_line(code, stderr, expected_code=2):
    assert code == expected_code and stderr.startswith("error: ") and stderr.count("\n") == 1, stderr
    return stderr.removeprefix("error: ").strip()


def contents(folder):
    """{name: bytes} of the files in a folder (not its lock, not subfolders)."""
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder)) if (folder / n).is_file() and n != ".lock"}


def test_a_held_out_dir_is_refused_naming_the_pid_and_host(char_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    with hold_folder(str(out), "out_dir"):  # a run in progress there, as far as the lock says
        (out / "ckpt.pt.tmp.99999").write_bytes(b"another run's checkpoint being written")
        code, _, stderr = cli(train.main, as_args(tiny_settings(data_dir=char_dataset, out_dir=str(out))), capsys)
        line = one_line(code, stderr)
        assert line.startswith(f"out_dir {out} is in use by PID {os.getpid()} on host {socket.gethostname()} (")
        assert line.endswith("; wait for it to end, or choose another out_dir")
        assert (out / "ckpt.pt.tmp.99999").exists()  # the other run's temp file is left alone
        write_checkpoint(str(out), {"model": {}, "model_args": {}, "config": {}, "iter_num": 1})
        code, _, stderr = cli(train.main, [f"--out_dir={out}", "--init_from=resume"], capsys)
        assert one_line(code, stderr).startswith(f"out_dir {out} is in use by PID {os.getpid()}")


def test_the_lock_goes_with_a_killed_process(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys, time; sys.path.insert(0, {ROOT!r}); from fitgpt.fsutil import hold_folder\n"
            f"lock = hold_folder({str(tmp_path)!r}, 'out_dir'); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(ConfigError, match=f"is in use by PID {holder.pid} on host "):
        hold_folder(str(tmp_path), "out_dir")
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    hold_folder(str(tmp_path), "out_dir").close()  # the kernel released it: no stale lock


def test_a_new_run_over_a_checkpoint_is_refused_and_overwrite_keeps_the_old_files(char_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    args = as_args(tiny_settings(data_dir=char_dataset, out_dir=str(out), **SHORT))
    code, _, _ = cli(train.main, args, capsys)
    assert code == 0
    before = contents(out)
    assert sorted(before) == ["ckpt.pt", "config.json", "metrics.jsonl"]
    code, _, stderr = cli(train.main, args, capsys)  # the same command again: an up-arrow
    assert one_line(code, stderr) == (
        f"out_dir {out} already holds a run (ckpt.pt); continue it with --init_from=resume, or start a new one "
        f"there with --overwrite=True (the old run's files are moved to {out}/replaced-<time>/, not deleted)"
    )
    assert contents(out) == before
    code, _, stderr = cli(train.main, [*args, "--overwrite=True", "--init_from=resume"], capsys)
    assert one_line(code, stderr).startswith("overwrite=True starts a new run and init_from='resume' continues one")
    code, stdout, _ = cli(train.main, [*args, "--overwrite=True", "--seed=7"], capsys)
    assert code == 0
    (aside,) = [n for n in os.listdir(out) if n.startswith("replaced-")]
    assert f"overwrite=True: the previous run's files are kept in {out / aside}" in stdout
    assert contents(out / aside) == before  # moved whole, byte for byte
    assert sorted(contents(out)) == ["ckpt.pt", "config.json", "metrics.jsonl"] and contents(out) != before


def test_resume_replaces_metrics_whole_or_not_at_all(tmp_path):
    """Dropping the rows past the checkpoint writes a new file and renames it: killed as soon as
    it has opened the file it writes, metrics.jsonl is the old file, byte for byte."""
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"iter": i, "loss": 1.0 / i}) + "\n" for i in range(1, 301)))
    original = path.read_bytes()
    killed = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import builtins, os, signal, sys; sys.path.insert(0, {ROOT!r}); from fitgpt import runfiles\n"
            "real_open = builtins.open\n"
            "def open_then_die(path, mode='r', *args, **kwargs):\n"
            "    f = real_open(path, mode, *args, **kwargs)\n"
            "    if 'w' in mode:\n"
            "        os.kill(os.getpid(), signal.SIGKILL)\n"
            "    return f\n"
            "builtins.open = open_then_die\n"
            f"runfiles.MetricsLog({str(path)!r}, resume_iter=2)",
        ],
        timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL and path.read_bytes() == original
    assert [r["iter"] for r in MetricsLog(str(path), resume_iter=2).kept] == [1, 2]
    assert path.read_text().count("\n") == 2


def copy_dataset(source, target):
    shutil.copytree(source, target)
    return target


def test_a_bad_token_id_anywhere_is_one_line_naming_shard_and_position(char_dataset, tmp_path):
    """A token id flipped where the start-up check does not look (it samples the start, middle and
    end of each shard) is caught in the batch that reads it."""
    data = copy_dataset(char_dataset, tmp_path / "data")
    shard = data / "shakespeare_char_train_000000.bin"
    probe = TokenLoader(str(data), "train", 4, 32, seed=3)
    size = len(probe.shards[0])
    unsampled = [(s, e) for s, e in ((16384, size // 2 - 8192), (size // 2 + 8192, size - 16384))]
    draws = 0
    while True:  # the first batch of the stream with a window in an unsampled stretch
        windows = probe._draw()
        hits = [start for _, start in windows if any(a <= start + 10 < b for a, b in unsampled)]
        if hits:
            break
        draws += 1
    position = hits[0] + 10
    tokens = np.fromfile(shard, dtype="<u2", offset=HEADER_BYTES)
    tokens[position] = 60000
    with open(shard, "r+b") as f:
        f.seek(HEADER_BYTES + 2 * position)
        f.write(tokens[position : position + 1].tobytes())
    loader = TokenLoader(str(data), "train", 4, 32, seed=3)
    assert loader.check_vocab(65) < 65  # the sampled check does not see it
    for _ in range(draws):
        loader.next_batch()
    with pytest.raises(DataError) as e:
        loader.next_batch()
    assert str(e.value) == (
        f"{shard}: token id 60000 at position {position:,} is outside the model's vocabulary (vocab_size 65): the "
        f"shard is damaged (prepare the dataset again) or was made with another tokenizer (set vocab_size, or use "
        f"a dataset of the model's tokenizer)"
    )


@pytest.mark.slow
def test_a_shard_cut_short_under_a_running_job_is_one_line_not_a_bus_error(char_dataset, tmp_path):
    data = copy_dataset(char_dataset, tmp_path / "data")
    shard = data / "shakespeare_char_train_000000.bin"
    script = (
        f"import os, sys; sys.path.insert(0, {ROOT!r})\n"
        "from fitgpt.errors import exit_on_error\n"
        "from fitgpt.loader import TokenLoader\n"
        "def main(argv):\n"
        f"    loader = TokenLoader({str(data)!r}, 'train', 8, 32, 'sequential')\n"
        "    loader.check_vocab(65)\n"
        f"    os.truncate({str(shard)!r}, 4096)  # as a tool rewriting it in place would\n"
        "    for _ in range(10_000):\n"
        "        loader.next_batch()\n"
        "exit_on_error(main)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result
    assert result.stderr.startswith(f"error: {shard}: the shard changed size while this run read it (now 4,096 bytes")


def test_the_tokenizer_travels_with_the_run(char_dataset, shakespeare_text, tmp_path, capsys):
    """A run on the text's characters resumed on a dataset of fewer characters is refused (its ids would mean
    other characters), and so is sampling once the run's dataset folder holds another table."""
    data = copy_dataset(char_dataset, tmp_path / "data")
    out = tmp_path / "run"
    code, _, _ = cli(train.main, as_args(tiny_settings(data_dir=str(data), out_dir=str(out), **SHORT)), capsys)
    assert code == 0
    recorded = torch.load(out / "ckpt.pt", weights_only=True)["tokenizer"]
    full, fewer = len(set(shakespeare_text)), len(set(shakespeare_text.lower()))
    assert recorded["kind"] == "char" and recorded["vocab_size"] == full > fewer
    lower = tmp_path / "lower"
    load_script("shakespeare_char").prepare(shakespeare_text.lower(), str(lower))
    code, _, stderr = cli(train.main, ["--init_from=resume", f"--out_dir={out}", f"--data_dir={lower}"], capsys)
    line = one_line(code, stderr)
    assert line.startswith(f"{lower}: its tokenizer (char, {fewer} symbols, table ") and line.endswith(
        "so its token ids mean other text; use a dataset made with that tokenizer, or train a new model on this one"
    )
    table = recorded["sha256"][:12]
    assert f"is not the one {out}/ckpt.pt was trained with (char, {full} symbols, table {table})" in line
    load_script("shakespeare_char").prepare(shakespeare_text.lower(), str(data))  # the run's dataset, replaced
    code, _, stderr = cli(sample.main, [f"--out_dir={out}", "--max_new_tokens=5"], capsys)
    assert one_line(code, stderr).startswith(
        f"{out}/ckpt.pt was trained with the tokenizer char, {full} symbols, table {table}, but "
        f"its dataset folder {data} now holds char, {fewer} symbols, table "
    )


def test_a_disk_with_room_for_one_checkpoint_says_no_space_left(char_dataset, tmp_path, monkeypatch, capsys):
    """The second save finds less free space than a checkpoint needs: refused before torch's
    writer starts (which would fail part-way with 'unexpected pos ...'), named as a full disk."""
    room = [10**12]  # free bytes: plenty for the first save, then what it left

    def free_bytes(folder):
        return room[0]

    real_save = checkpoint.torch.save

    def save(obj, f):
        real_save(obj, f)
        room[0] = 100 * 2**10

    monkeypatch.setattr(checkpoint, "free_bytes", free_bytes)
    monkeypatch.setattr(checkpoint.torch, "save", save)
    out = tmp_path / "run"
    args = as_args(tiny_settings(data_dir=char_dataset, out_dir=str(out), max_iters=8, eval_interval=4, eval_iters=1))
    code, _, stderr = cli(train.main, args, capsys)
    line = one_line(code, stderr, expected_code=1)
    assert line.startswith(f"could not write a checkpoint in {out} (no space left on device: a checkpoint needs ")
    assert line.endswith(
        f" MiB; 0.1 MiB free there); {out}/ckpt.pt is intact; free disk space or choose another out_dir"
    )
    assert sorted(os.listdir(out)) == [".lock", "ckpt.pt", "config.json", "metrics.jsonl"]
    assert torch.load(out / "ckpt.pt", weights_only=True)["iter_num"] == 4


def test_a_full_disk_at_start_is_one_line_and_leaves_no_probe_file(tmp_path, monkeypatch):
    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __getattr__(self, name):
            return getattr(self.f, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(fsutil, "open", lambda *args, **kwargs: FullDisk(open(*args, **kwargs)), raising=False)
    with pytest.raises(ConfigError) as e:
        fsutil.hold_folder(str(tmp_path / "run"), "out_dir")
    assert str(e.value).startswith(f"out_dir {tmp_path / 'run'}: no space left on device (")
    assert str(e.value).endswith(" free); free disk space or choose another out_dir")
    assert os.listdir(tmp_path / "run") == [".lock"]  # the lock file itself, and no .write_test.<pid>
    with pytest.raises(OSError) as e:
        fsutil.atomic_write(str(tmp_path / "run" / "config.json"), lambda f: f.write(b"{}"))
    assert errors.os_error_line(e.value).startswith(f"no space left on device writing {tmp_path}/run/config.json (")


def dataset_bytes(folder):
    """{name: bytes} of a dataset folder's files (not its lock, nor a partial build)."""
    return {n: (folder / n).read_bytes() for n in sorted(os.listdir(folder)) if n not in (".lock", ".partial")}


KILLED_PREPARE = """
import os, runpy, signal, sys
sys.path.insert(0, {root!r})
from fitgpt import fsutil, shards
written = []
def write_shard(path, tokens):  # killed half-way through its 2nd shard (train), as kill -9 would
    if written:
        fsutil.atomic_write(path, lambda f: (f.write(b"x" * 4096), f.flush(), os.kill(os.getpid(), signal.SIGKILL)))
    written.append(path)
    real(path, tokens)
real, shards.write_shard = shards.write_shard, write_shard
sys.argv = ["prepare.py", *{args!r}]
runpy.run_path(os.path.join({root!r}, "data", "shakespeare_char", "prepare.py"), run_name="__main__")
"""


def test_a_killed_prepare_leaves_the_old_dataset_whole(char_dataset, shakespeare_text, tmp_path):
    data = copy_dataset(char_dataset, tmp_path / "data")
    before = dataset_bytes(data)
    lower = tmp_path / "lower.txt"
    lower.write_text(shakespeare_text.lower())
    script = KILLED_PREPARE.format(root=ROOT, args=["--input", str(lower), "--out_dir", str(data)])
    killed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert dataset_bytes(data) == before  # no new val shard beside the old train shard and meta.json
    load_script("shakespeare_char").main(["--input", str(lower), "--out_dir", str(data)])  # run again: done
    assert read_meta(str(data))["vocab_size"] == len(set(shakespeare_text.lower()))
    assert sorted(os.listdir(data)) == sorted([*before, ".lock"])  # the same files, new; no temp file left


def test_a_kill_while_swapping_is_refused_then_finished(char_dataset, shakespeare_text, tmp_path, monkeypatch, capsys):
    data = copy_dataset(char_dataset, tmp_path / "data")
    moves, real_replace = [], os.replace

    def replace(src, dst):  # killed after moving the first new file in
        if ".partial" in str(src) and ".partial" not in str(dst):
            moves.append(dst)
            if len(moves) == 2:
                raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(staging.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        load_script("shakespeare_char").prepare(shakespeare_text.lower(), str(data))
    monkeypatch.undo()
    code, _, stderr = cli(train.main, as_args(tiny_settings(data_dir=str(data), out_dir=str(tmp_path / "run"))), capsys)
    assert one_line(code, stderr) == (
        f"{data}: a prepare.py run was replacing this dataset and stopped part-way; run the same prepare command "
        f"again to finish it"
    )
    load_script("shakespeare_char").prepare(shakespeare_text.lower(), str(data))
    assert not os.path.exists(data / ".swapping") and not os.path.exists(data / ".partial")
    reference = tmp_path / "reference"
    load_script("shakespeare_char").prepare(shakespeare_text.lower(), str(reference))
    assert dataset_bytes(data) == dataset_bytes(reference)


def test_fine_tuning_gpt2_on_characters_is_refused_before_loading_it(char_dataset, tmp_path, capsys):
    args = as_args(tiny_settings(data_dir=char_dataset, out_dir=str(tmp_path / "run"), init_from="gpt2"))
    code, _, stderr = cli(train.main, args, capsys)
    assert (
        one_line(code, stderr).startswith(f"{char_dataset}: its tokenizer (char, 62 symbols, table ")
        and "is not the one gpt2 was trained with (gpt2, 50,257 tokens), so its token ids mean other text" in stderr
    )


def test_a_folder_on_a_filesystem_without_locks_is_used_with_a_warning(tmp_path, monkeypatch, capsys):
    def no_locks(f, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fsutil.fcntl, "flock", no_locks)
    fsutil.hold_folder(str(tmp_path), "out_dir").close()
    assert capsys.readouterr().out == (
        f"WARNING: out_dir {tmp_path}: cannot lock it ({os.strerror(errno.ENOLCK)}); make sure no other process "
        f"uses it\n"
    )
