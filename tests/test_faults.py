"""Fault injection: kills, signals, NaNs, full disks, bad checkpoints and bad settings."""

import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import bench
import plan
import sample
import sweep
import train
from conftest import ROOT, as_args, cli, run_script, tiny_settings
from fitgpt.checkpoint import load_checkpoint, write_checkpoint
from fitgpt.errors import CheckpointError, RunFailure, StopRequest
from fitgpt.training import out_of_memory_message

# checkpoints every 4 iterations, dropout on: a resumed run must restore the RNG states too
FAULTS = dict(batch_size=4, eval_iters=2, eval_interval=8, log_interval=1, ckpt_interval=4, warmup_iters=3, dropout=0.1)


def fault_settings(**overrides):
    return tiny_settings(**{**FAULTS, **overrides})


def fault_args(**overrides):
    return as_args(fault_settings(**overrides))


# Runs train.py in-process after patching one function to SIGKILL the process at a chosen moment.
HARNESS = f"""
import os, runpy, signal, sys
sys.path.insert(0, {ROOT!r})
from fitgpt import loader
mode, n = sys.argv[1], int(sys.argv[2])
calls = []
def die():
    os.kill(os.getpid(), signal.SIGKILL)
if mode == "batch":  # killed as the train loader (the first one made) hands out its n-th batch: mid-step
    made = []
    original_init, original_next = loader.TokenLoader.__init__, loader.TokenLoader.next_batch
    def init(self, *args, **kwargs):
        made.append(self)
        original_init(self, *args, **kwargs)
    def next_batch(self):
        if self is made[0]:
            calls.append(1)
            if len(calls) == n:
                die()
        return original_next(self)
    loader.TokenLoader.__init__, loader.TokenLoader.next_batch = init, next_batch
else:  # killed during the n-th checkpoint write: the temporary file is complete, not yet renamed
    original_replace = os.replace
    def replace(src, dst):
        if str(dst).endswith("ckpt.pt"):
            calls.append(1)
            if len(calls) == n:
                die()
        return original_replace(src, dst)
    os.replace = replace
sys.argv = ["train.py"] + sys.argv[3:]
runpy.run_path(os.path.join({ROOT!r}, "train.py"), run_name="__main__")
"""


def losses(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        records = [json.loads(line) for line in f]
    return [(r["iter"], r["loss"]) for r in records if "loss" in r]


def weights(out_dir):
    return torch.load(os.path.join(out_dir, "ckpt.pt"), weights_only=True)


def assert_same_run(reference, resumed):
    a, b = weights(reference), weights(resumed)
    assert a["iter_num"] == b["iter_num"] == 20
    for name, tensor in a["model"].items():
        assert torch.equal(tensor, b["model"][name]), name
    assert losses(reference) == losses(resumed)
    assert [i for i, _ in losses(resumed)] == list(range(1, 21))


@pytest.fixture(scope="module")
def reference_runs(char_dataset, tmp_path_factory):
    """The uninterrupted run's folder for (data order, optimizer), trained on first use."""
    runs = {}

    def reference(order, optimizer):
        if (order, optimizer) not in runs:
            out = str(tmp_path_factory.mktemp(f"reference_{order}_{optimizer}"))
            train.run(fault_settings(data_dir=char_dataset, out_dir=out, data_order=order, optimizer=optimizer))
            runs[order, optimizer] = out
        return runs[order, optimizer]

    return reference


@pytest.mark.parametrize(
    "order, mode, n, optimizer",
    [
        ("random", "batch", 13, "adamw"),  # second micro-step of iteration 7 (2 per iteration)
        ("random", "batch", 13, "muon"),  # Muon's momentum and AdamW's moments both come back
        pytest.param("random", "batch", 30, "adamw", marks=pytest.mark.slow),  # first micro-step of iteration 15
        pytest.param("random", "save", 3, "adamw", marks=pytest.mark.slow),  # while writing the iteration-12 one
        pytest.param("sequential", "batch", 19, "adamw", marks=pytest.mark.slow),
    ],
)
def test_sigkill_then_resume_is_bit_identical(reference_runs, char_dataset, tmp_path, order, mode, n, optimizer):
    out = str(tmp_path / "run")
    args = fault_args(data_dir=char_dataset, out_dir=out, data_order=order, optimizer=optimizer)
    killed = subprocess.run(
        [sys.executable, "-c", HARNESS, mode, str(n), *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if mode == "save":
        assert any(".tmp." in name for name in os.listdir(out))  # the interrupted write left its temp file
        assert weights(out)["iter_num"] == 8  # ckpt.pt is still the previous, complete checkpoint
    run_script("train.py", *args, "--init_from=resume")
    assert not any(".tmp." in name for name in os.listdir(out))
    assert_same_run(reference_runs(order, optimizer), out)


@pytest.mark.slow
def test_sigterm_saves_and_exits_zero(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    args = fault_args(max_iters=100000, lr_decay_iters=100000, ckpt_interval=1000, data_dir=char_dataset, out_dir=out)
    proc = subprocess.Popen(
        [sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    metrics = os.path.join(out, "metrics.jsonl")
    deadline = time.time() + 120
    while time.time() < deadline and not (os.path.exists(metrics) and len(losses(out)) >= 3):
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    saved = weights(out)["iter_num"]
    assert saved == losses(out)[-1][0] >= 3
    assert f"resume with: python train.py --init_from=resume --out_dir={out}" in stdout


def test_second_sigint_exits_at_once(monkeypatch):
    exits = []
    monkeypatch.setattr(os, "_exit", exits.append)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.requested == "SIGINT" and exits == []
        os.kill(os.getpid(), signal.SIGINT)
        assert exits == [130]
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == previous  # handed back


def test_nan_stop_policy_keeps_last_checkpoint(char_dataset, tmp_path, capsys):
    out = str(tmp_path / "run")
    code, _, stderr = cli(train.main, fault_args(inject_nan_at_iter=6, data_dir=char_dataset, out_dir=out), capsys)
    assert code == 1 and stderr.startswith("error: iteration 6: non-finite loss") and len(stderr.splitlines()) == 1
    checkpoint = load_checkpoint(os.path.join(out, "ckpt.pt"))
    assert checkpoint["iter_num"] == 4
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())


def test_nan_skip_policy(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    train.run(fault_settings(inject_nan_at_iter=6, on_nonfinite="skip", data_dir=char_dataset, out_dir=out))
    with open(os.path.join(out, "metrics.jsonl")) as f:
        skipped = {r["iter"]: r["skipped"] for r in map(json.loads, f) if "skipped" in r}
    assert skipped[6] == 0 and skipped[7] == 1 and skipped[20] == 1  # iteration index 6 is logged as iter 7
    checkpoint = load_checkpoint(os.path.join(out, "ckpt.pt"))
    assert checkpoint["iter_num"] == 20 and checkpoint["skipped_batches"] == 1
    assert all(torch.isfinite(t).all() for t in checkpoint["model"].values())
    with pytest.raises(RunFailure, match="1 non-finite batches in a row"):
        train.run(
            fault_settings(
                inject_nan_at_iter=6,
                on_nonfinite="skip",
                max_skipped_in_a_row=1,
                data_dir=char_dataset,
                out_dir=f"{out}-2",
            )
        )


def test_disk_full_leaves_previous_checkpoint_loadable(tmp_path, monkeypatch):
    write_checkpoint(str(tmp_path), {"model": {"w": torch.ones(3)}, "model_args": {}, "iter_num": 1})

    def full_disk(obj, f):
        f.write(b"partial bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        write_checkpoint(str(tmp_path), {"model": {"w": torch.zeros(3)}, "model_args": {}, "iter_num": 2})
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt.pt"]
    assert torch.equal(load_checkpoint(str(tmp_path / "ckpt.pt"))["model"]["w"], torch.ones(3))


def test_keep_last_rotates_old_copies(tmp_path):
    for it in (10, 20, 30, 40):
        write_checkpoint(str(tmp_path), {"model": {}, "model_args": {}, "iter_num": it}, keep_last=2)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.pt", "ckpt_30.pt", "ckpt_40.pt"]


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_pickled_object_checkpoint_refused(tmp_path, capsys):
    path = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "model_args": {}, "evil": Payload()}, path)
    with pytest.raises(CheckpointError, match=r"ckpt.pt: refused, it holds pickled objects"):
        load_checkpoint(str(path))
    code, stdout, stderr = cli(sample.main, [f"--out_dir={tmp_path}"], capsys)
    assert code == 2 and "refused" in stderr and "pwned" not in stdout


def test_out_of_memory_message_suggests_smaller_micro_batch():
    message = out_of_memory_message(16, 1024, 32, 77.2)
    assert "batch_size=16, block_size=1024" in message and "77.2 GiB" in message
    assert "batch_size=8 with gradient_accumulation_steps=64" in message


def corrupt(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "case, args, expected",
    [
        ("heads", ["--n_embd=30", "--n_head=4"], "n_embd (30) must be divisible by n_head (4)"),
        ("kv_heads", ["--n_head=4", "--n_kv_heads=3", "--n_embd=32"], "n_head (4) must be divisible by n_kv_heads (3)"),
        ("layers", ["--n_layer=0"], "'n_layer' must be >= 1, got 0"),
        ("batch", ["--batch_size=0"], "'batch_size' must be >= 1, got 0"),
        ("dtype", ["--dtype=fp16"], "dtype='fp16' is not supported for training on CPU"),
        ("world", ["--gradient_accumulation_steps=3"], "must be divisible by the world size (2)"),
        ("no_ckpt", ["--init_from=resume"], "ckpt.pt: no checkpoint there"),
        ("truncated", ["--init_from=resume"], "ckpt.pt: not a readable checkpoint, truncated or corrupt"),
        ("not_ckpt", ["--init_from=resume"], "ckpt.pt: not a readable checkpoint"),
        (
            "shape",
            ["--init_from=resume", "--n_layer=3"],
            "model shape differs from the checkpoint: n_layer=3 (checkpoint has 2)",
        ),
        ("shard", [], "_train_000000.bin: bad magic number"),
        ("out_dir", [], "out is a file, not a folder; choose another out_dir"),
    ],
)
def test_bad_input_is_one_line_error(char_dataset, tmp_path, monkeypatch, capsys, case, args, expected):
    out, data = tmp_path / "out", char_dataset
    if case == "world":  # as torchrun sets them for rank 0 of 2
        for name, value in (("RANK", "0"), ("LOCAL_RANK", "0"), ("WORLD_SIZE", "2")):
            monkeypatch.setenv(name, value)
    if case in ("truncated", "not_ckpt", "shape"):
        train.run(fault_settings(max_iters=4, data_dir=data, out_dir=str(out)))
        full = (out / "ckpt.pt").read_bytes()
        if case == "truncated":
            corrupt(out / "ckpt.pt", full[: len(full) // 2])
        elif case == "not_ckpt":
            corrupt(out / "ckpt.pt", b"this is not a checkpoint")
    if case == "shard":
        data = tmp_path / "data"
        data.mkdir()
        for name in os.listdir(char_dataset):
            (data / name).write_bytes((tmp_path / char_dataset / name).read_bytes())
        shard = data / "shakespeare_char_train_000000.bin"
        shard.write_bytes(b"\x00" * 4 + shard.read_bytes()[4:])
    if case == "out_dir":
        out.write_text("a file, not a folder")
    code, _, stderr = cli(train.main, [*fault_args(data_dir=str(data), out_dir=str(out)), *args], capsys)
    assert code == 2
    assert stderr.startswith("error: ") and expected in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    if case in ("truncated", "shape"):
        assert (out / "ckpt.pt").exists()  # nothing overwritten or removed


RULES = [
    (
        ["--parallelism=fsdp", "--dtype=fp16"],
        "parallelism='fsdp' trains in bf16 or fp32 here, not fp16; set dtype='bf16'",
    ),
    (
        ["--parallelism=fsdp", "--optimizer=muon"],
        "optimizer='muon' does not run on FSDP-sharded weights; set parallelism",
    ),
    (
        ["--overwrite=True", "--init_from=resume"],
        "overwrite=True starts a new run and init_from='resume' continues one",
    ),
    (["--n_embd=30", "--n_head=4"], "n_embd (30) must be divisible by n_head (4)"),
]


@pytest.mark.parametrize("main", [train.main, bench.main, plan.main, sweep.main], ids=lambda m: m.__module__)
@pytest.mark.parametrize("args, expected", RULES, ids=lambda x: x[0] if isinstance(x, list) else "")
def test_two_setting_rules_are_refused_when_parsed_by_every_entry_point(main, args, expected, tmp_path, capsys):
    """Refused before anything runs: no dataset, out_dir or device is needed to say so."""
    swept = ["--learning_rate=1e-3,2e-3"] if main is sweep.main else []
    code, stdout, stderr = cli(main, [*args, *swept, f"--out_dir={tmp_path / 'run'}"], capsys)
    assert code == 2 and expected in stderr and len(stderr.strip().splitlines()) == 1, stderr
    assert not os.path.exists(tmp_path / "run")
