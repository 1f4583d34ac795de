"""What a new user meets in the first hour, each case a one-line answer: offline downloads,
damaged checkpoints, failed saves, bad values, empty inputs, progress and signals."""

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
import torch
from test_prepare import load_script

import sample
import train
from conftest import ROOT, TEXT, as_args, cli, tiny_settings
from fitgpt import checkpoint, loader
from fitgpt.checkpoint import Progress
from fitgpt.errors import ConfigError, DataError
from fitgpt.formatting import duration
from fitgpt.hf import load_hf
from fitgpt.runlog import Throughput
from fitgpt.shards import write_shard
from fitgpt.tokenization import TiktokenTokenizer


@pytest.fixture
def offline(monkeypatch):
    """No socket can connect, and any retry loop that sleeps fails the test: offline must be fast."""

    def refuse(*args, **kwargs):
        raise OSError(101, "Network is unreachable (blocked by the test)")

    def no_sleep(seconds):
        raise AssertionError(f"slept {seconds} s: offline, nothing should wait and retry")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(time, "sleep", no_sleep)
    for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)


def one_line(error):
    assert "\n" not in str(error)
    return str(error)


def test_offline_downloads_fail_at_once_naming_the_way_out(offline, tmp_path, monkeypatch):
    with pytest.raises(DataError) as e:
        load_script("shakespeare_char").main(["--out_dir", str(tmp_path)])
    assert "cannot download https://" in one_line(e.value) and "pass --input" in str(e.value)
    with pytest.raises(DataError) as e:
        load_script("fineweb").prepare("fineweb", out_dir=str(tmp_path))
    assert "HuggingFaceFW/fineweb (sample-10BT)" in one_line(e.value) and "--local" in str(e.value)
    with pytest.raises(DataError) as e:
        load_script("tinystories").prepare(out_dir=str(tmp_path))
    assert "roneneldan/TinyStories" in one_line(e.value) and "--local" in str(e.value)


def test_offline_gpt2_weights_and_bpe_files_fail_at_once(offline, tmp_path, monkeypatch):
    pytest.importorskip("transformers")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache
    with pytest.raises(ConfigError) as e:
        load_hf("gpt2")
    assert "not in the Hugging Face cache (huggingface.co is unreachable" in one_line(e.value)
    import tiktoken.registry

    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})  # forget encodings this process loaded
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    with pytest.raises(DataError) as e:
        TiktokenTokenizer("gpt2")
    assert f"not in {tmp_path / 'empty'} and the download failed" in one_line(e.value)
    assert "set TIKTOKEN_CACHE_DIR" in str(e.value)


def test_auto_prepare_failure_is_the_scripts_own_line(tmp_path, monkeypatch):
    script = tmp_path / "data" / "tiny" / "prepare.py"
    script.parent.mkdir(parents=True)
    script.write_text("import sys\nsys.exit('error: cannot download X: offline; pass --input FILE')\n")
    monkeypatch.setattr(loader, "REPO", str(tmp_path))
    with pytest.raises(DataError) as e:
        loader.prepare_if_missing({"dataset": "tiny", "auto_prepare": True, "data_dir": ""})
    assert one_line(e.value).startswith("dataset 'tiny' could not be prepared by ")
    assert str(e.value).endswith("prepare.py: cannot download X: offline; pass --input FILE")


def corrupt_a_tensor(path):
    """Overwrite 4 KB in the middle of the largest tensor record, as a bad disk sector would."""
    with zipfile.ZipFile(path) as archive:
        record = max(archive.infolist(), key=lambda r: r.file_size)
        start = record.header_offset + 30 + len(record.filename.encode()) + len(record.extra)
    with open(path, "r+b") as f:
        f.seek(start + record.file_size // 2)
        f.write(os.urandom(4096))
    return record.filename.split("/", 1)[1]


def test_damaged_checkpoint_is_refused_naming_the_previous_one(char_dataset, tmp_path, capsys):
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out, max_iters=20, eval_interval=10, keep_last=2))
    record = corrupt_a_tensor(os.path.join(out, "ckpt.pt"))
    expected = (
        f"error: {out}/ckpt.pt: damaged: its record {record} no longer matches the checksum stored when it "
        f"was saved (bytes changed on disk); use the previous checkpoint {out}/ckpt_20.pt\n"
    )
    for main, argv in ((train.main, ["--init_from=resume", f"--out_dir={out}"]), (sample.main, [f"--out_dir={out}"])):
        code, _, stderr = cli(main, argv, capsys)
        assert (code, stderr) == (2, expected)
    assert checkpoint.load_checkpoint(os.path.join(out, "ckpt_20.pt"))["iter_num"] == 20  # the rotated copy is sound


# what torch.save raised when a 2 MB tmpfs filled up under it (torch 2.14, a real file object)
TORCH_DISK_FULL = "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598"


def test_failed_save_is_one_line_and_keeps_the_last_checkpoint(char_dataset, tmp_path, monkeypatch, capsys):
    saves, real_save = [], torch.save

    def save(obj, f):  # the 2nd save fills the disk half-way and fails as torch's writer does
        saves.append(1)
        if len(saves) == 2:
            f.write(b"the first bytes of a checkpoint")
            raise RuntimeError(TORCH_DISK_FULL)
        return real_save(obj, f)

    monkeypatch.setattr(checkpoint.torch, "save", save)
    out = tmp_path / "run"
    args = as_args(tiny_settings(data_dir=char_dataset, out_dir=str(out), max_iters=20, eval_interval=10))
    code, _, stderr = cli(train.main, args, capsys)
    assert code == 1 and len(stderr.splitlines()) == 1
    assert stderr.startswith(f"error: could not write a checkpoint in {out} (torch.save failed: {TORCH_DISK_FULL}; ")
    assert " free there); " in stderr and f"{out}/ckpt.pt is intact; free disk space" in stderr
    assert sorted(os.listdir(out)) == [".lock", "ckpt.pt", "config.json", "metrics.jsonl"]  # no partial file
    monkeypatch.undo()
    assert checkpoint.load_checkpoint(str(out / "ckpt.pt"))["iter_num"] == 10


@pytest.mark.parametrize("argv, message", [
    (["--mlp_hidden=big"], "error: argument '--mlp_hidden=big': 'mlp_hidden' expects int or None, got str ('big')"),
    (["--n_kv_heads=1.5"], "error: argument '--n_kv_heads=1.5': 'n_kv_heads' expects int or None, got float (1.5)"),
    (["--init_from=gtp2"], "did you mean gpt2?"),
    (["--dtype=bf61"], "did you mean bf16?"),
])  # fmt: skip
def test_bad_train_values_are_one_line(argv, message, capsys):
    code, _, stderr = cli(train.main, argv, capsys)
    assert code == 2 and len(stderr.splitlines()) == 1 and message in stderr


@pytest.mark.parametrize("argv", [["--temperature=-0.5"], ["--max_new_tokens=0"], ["--top_k=0"], ["--top_p=1.5"]])
def test_bad_sample_values_are_one_line(argv, capsys):
    code, _, stderr = cli(sample.main, argv, capsys)
    assert code == 2 and len(stderr.splitlines()) == 1 and stderr.startswith("error: argument")


def test_dataset_without_meta_json_warns_with_the_largest_id(char_dataset, tmp_path, capsys):
    data = tmp_path / "no_meta"
    shutil.copytree(char_dataset, data)
    os.remove(data / "meta.json")
    train.run(tiny_settings(data_dir=str(data), out_dir=str(tmp_path / "run"), max_iters=1, eval_iters=1))
    assert (
        f"WARNING: {data} has no meta.json, so its tokens are taken to be GPT-2's (50,257 ids), but the "
        f"largest id in them is 61; if another tokenizer made them, restore its meta.json or set "
        f"vocab_size=62"
    ) in capsys.readouterr().out


def test_empty_inputs_fail_in_one_line(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(DataError, match=f"--input {empty} is empty"):
        load_script("shakespeare_char").main(["--input", str(empty), "--out_dir", str(tmp_path / "a")])
    with pytest.raises(DataError, match="the input held no text"):
        load_script("text").prepare([str(empty)], str(tmp_path / "b"), num_proc=1)


def test_small_corpus_gets_both_splits_and_a_degenerate_one_says_what_to_change(tmp_path, gpt2_encoding):
    corpus = tmp_path / "small.txt"
    corpus.write_text(open(TEXT, encoding="utf-8").read()[:40_000])  # ~10K tokens, far under one 100M shard
    out = tmp_path / "fw"
    load_script("fineweb").prepare("fineweb", local=[str(corpus)], out_dir=str(out), num_proc=1)
    val, train_shard = out / "fineweb_val_000000.bin", out / "fineweb_train_000001.bin"
    assert val.exists() and train_shard.exists() and train_shard.stat().st_size > 5 * val.stat().st_size
    with pytest.raises(
        DataError,
        match=r"all [\d,]+ tokens went to the val split and none to train; pass a smaller "
        r"--val_tokens, e.g. [\d,]+",
    ):
        load_script("text").prepare([str(corpus)], str(tmp_path / "t"), val_tokens=100_000, num_proc=1)


def test_eta_and_elapsed_from_an_injected_clock():
    now = [1000.0]
    progress = Progress(iter_num=100, elapsed_s=60.0)  # resumed after 60 s of training
    rates = Throughput(
        progress,
        tokens_per_iter=512,
        flops_per_token=10**6,
        peak_flops=1e9,
        world_size=1,
        max_iters=500,
        clock=lambda: now[0],
    )
    now[0] += 10.0  # 10 iterations in 10 s ...
    with rates.paused():
        now[0] += 5.0  # ... and an evaluation of 5 s, which ms/iter and tokens/s leave out
    figures = rates.lap(110)
    assert figures["ms"] == 1000.0 and figures["tok_per_s"] == 512.0 and figures["mfu"] == pytest.approx(0.512)
    assert figures["eta_s"] == 15.0 / 10 * 390  # this part's pace so far, evals included
    assert figures["elapsed_s"] == 75.0  # the wall clock goes on across a resume
    assert [duration(s) for s in (45, 185, 2 * 3600 + 14 * 60, 3 * 86400 + 4 * 3600)] == [
        "45s",
        "3m 05s",
        "2h 14m",
        "3d 04h",
    ]


def test_run_ends_with_a_summary(char_dataset, tmp_path, capsys):
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out))
    lines = capsys.readouterr().out.splitlines()
    assert " elapsed, ETA " in lines[-3]
    assert lines[-1].startswith("done: 20 iterations, 10,240 tokens in ") and lines[-1].endswith(
        f"checkpoint {out}/ckpt.pt"
    )
    assert "; best val loss " in lines[-1]


def wait_for(proc, text, timeout=120):
    """Read proc's stdout, in a thread, until a line holds text (at most timeout seconds)."""
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if text in lines.get(timeout=max(0.01, deadline - time.time())):
                return
        except queue.Empty:
            break
    proc.kill()
    raise AssertionError(f"the process never printed {text!r}")


def test_ctrl_c_while_importing_is_one_line():
    proc = subprocess.Popen(
        [sys.executable, "train.py", "--help"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    time.sleep(0.5)  # inside `import torch`, which takes seconds
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130 and stderr == "interrupted by SIGINT while starting; nothing was written\n"


@pytest.mark.parametrize("compiled", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_sigterm_during_the_first_evaluation_is_one_line(char_dataset, tmp_path, compiled):
    """The first evaluation runs before the loop (and, compiled, compiles the model)."""
    out = tmp_path / "run"
    args = as_args(tiny_settings(data_dir=char_dataset, out_dir=str(out), eval_iters=100_000, compile=compiled))
    proc = subprocess.Popen(
        [sys.executable, "-u", "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(proc, "plan: ")
    deadline = time.monotonic() + 60
    while not (out / "config.json").exists() and time.monotonic() < deadline:  # written just before it
        time.sleep(0.05)
    time.sleep(0.5)  # inside the evaluation now: 100,000 batches take minutes
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 143 and stderr.splitlines()[-1] == "interrupted by SIGTERM"
    assert "Traceback" not in stderr
    assert sorted(os.listdir(out)) == [".lock", "config.json"]  # no checkpoint, no half-written file
    assert json.loads((out / "config.json").read_text())["settings"]["eval_iters"] == 100_000


@pytest.mark.slow
def test_assets_are_optional_and_required_only_when_asked(tmp_path):
    """Without GPT-2's BPE files (no assets folder, no cache, no network) a test that needs them skips
    with their names; with FITGPT_REQUIRE_ASSETS=1 it fails."""
    (tmp_path / "sitecustomize.py").write_text(
        "import socket\n"
        "def refuse(*a, **k):\n    raise OSError(101, 'network blocked')\n"
        "socket.create_connection = socket.getaddrinfo = refuse\n"
    )
    env = {
        **os.environ,
        "PYTHONPATH": str(tmp_path),
        "FITGPT_ASSETS": str(tmp_path / "none"),
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "empty_cache"),
    }
    env.pop("FITGPT_REQUIRE_ASSETS", None)
    test = "tests/test_prepare.py::test_text_round_trip"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-rs", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and "1 skipped" in result.stdout
    assert "needs tiktoken's GPT-2 BPE files vocab.bpe and encoder.json" in result.stdout
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", test],
        cwd=ROOT,
        env={**env, "FITGPT_REQUIRE_ASSETS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1 and "1 error" in result.stdout


def test_bench_says_what_it_times_and_how_long(capsys):
    import bench

    code, stdout, _ = cli(bench.main, [*as_args(tiny_settings()), "--bench_steps=2", "--bench_warmup=1"], capsys)
    assert code == 0
    assert "timing 2 optimizer steps after 1 warm-up steps (6 micro-steps)" in stdout
    assert "a micro-step takes about " in stdout and "the benchmark will take about " in stdout
    assert bench.expected_duration(60.0, 384, "x", "cpu").endswith(
        "that is long on cpu: try a smaller config (config/shakespeare_char.py), --gradient_accumulation_steps=1, "
        "--bench_steps=2 or a smaller --batch_size"
    )


def test_written_shards_have_no_partial_files_after_ctrl_c(tmp_path, monkeypatch):
    """An interrupted shard write (Ctrl-C inside it) leaves neither the shard nor its temp file."""
    from fitgpt import fsutil

    def interrupted(f):
        f.write(b"half a shard")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fsutil.atomic_write(str(tmp_path / "x_train_000000.bin"), interrupted)
    assert os.listdir(tmp_path) == []
    write_shard(tmp_path / "x_train_000000.bin", np.arange(10))
    assert os.listdir(tmp_path) == ["x_train_000000.bin"]
