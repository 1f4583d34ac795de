"""plot.py on made-up run folders: the chart it draws (a real image of the expected size, in each
format), runs without val points or still being written, the table, and its one-line errors."""

import json
import math
import os
import subprocess
import sys

import pytest
from PIL import Image

import plot
from conftest import ROOT, cli
from fitgpt.architecture import GPTConfig
from fitgpt.errors import DataError
from fitgpt.formatting import human_count, short_float
from fitgpt.runfiles import dataset_facts, read_records, run_config, write_run_config
from fitgpt.runs import Run, alarm_summary, moving_average
from fitgpt.settings import TrainSettings

TRAIN_TOKENS = 20_000


def synthetic_run(folder, n_embd=32, lr=1e-3, iters=60, eval_interval=20, partial=False, tokens_per_byte=None):
    """A run folder as train.py leaves it: config.json, and metrics.jsonl with a loss that falls,
    a warmup-then-cosine lr, an evaluation every eval_interval (none when 0), and past one epoch;
    with tokens_per_byte, val_bpb beside each val_loss."""
    s = TrainSettings(
        out_dir=str(folder),
        n_layer=2,
        n_head=2,
        n_embd=n_embd,
        block_size=32,
        batch_size=16,
        gradient_accumulation_steps=1,
        learning_rate=lr,
        max_iters=iters,
        eval_interval=eval_interval or 1000,
    )
    model = GPTConfig.from_settings(s, vocab_size=65, vocab_multiple=1)
    dataset = dataset_facts("/data/chars", {"vocab_size": 65}, (TRAIN_TOKENS, 2000), None)
    config = run_config(s, model, dataset=dataset, device="cpu", dtype="fp32", world_size=1, versions={})
    os.makedirs(folder)
    write_run_config(str(folder), config)

    def row(it):
        tokens = it * s.tokens_per_iter
        lr_now = lr * min(1.0, (it + 1) / 10) * (0.55 + 0.45 * math.cos(math.pi * it / iters))
        return {
            "iter": it,
            "tokens": tokens,
            "flops": tokens * config["flops_per_token"],
            "epoch": tokens / TRAIN_TOKENS,
            "lr": lr_now,
            "elapsed_s": 0.5 * it,
        }

    lines = [row(0) | ({"val_loss": 4.2, "train_eval_loss": 4.2} if eval_interval else {})]
    for it in range(5, iters + 1, 5):
        loss = 1.5 + 2.7 * math.exp(-it / 20)
        lines.append(row(it) | {"loss": loss})
        if eval_interval and it % eval_interval == 0:
            lines[-1] |= {"val_loss": loss + 0.05, "train_eval_loss": loss - 0.02}
            if tokens_per_byte:
                lines[-1]["val_bpb"] = (loss + 0.05) * tokens_per_byte / math.log(2)
    lines.insert(1, {"iter": 0, "tokens": 0, "alarm": "epochs_planned", "message": "..."})
    lines.append({"iter": 40, "tokens": 40 * 512, "alarm": "plateau", "message": "..."})
    text = "".join(json.dumps(line) + "\n" for line in lines)
    if partial:  # the run is writing its next line
        text += json.dumps(row(iters + 5) | {"loss": 1.6})[:30]
    (folder / "metrics.jsonl").write_text(text)
    return str(folder)


def test_chart_of_several_runs_against_tokens(tmp_path, capsys):
    small = synthetic_run(tmp_path / "run-small")
    large = synthetic_run(tmp_path / "run-large", n_embd=96, lr=5e-4, partial=True)
    no_val = synthetic_run(tmp_path / "no-val", eval_interval=0)
    out = tmp_path / "loss.png"
    code, stdout, stderr = cli(plot.main, [small, large, no_val, "--out", out], capsys)
    assert code == 0, stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (1000, 700)
        image.verify()
    lines = stdout.splitlines()
    assert lines[0].split() == [
        "run",
        "params",
        "iters",
        "tokens",
        "epochs",
        "final",
        "val",
        "best",
        "val",
        "(iter)",
        "alarms",
    ]
    assert lines[1].split()[:7] == ["run-small", "27.8K", "60", "30.7K", "1.54", "1.6844", "1.6844"]
    assert lines[2].startswith("run-large") and "epochs_planned, plateau" in lines[2]
    assert lines[3].split()[:7] == ["no-val", "27.8K", "60", "30.7K", "1.54", "-", "-"]
    assert lines[-1] == f"wrote {out}"


@pytest.mark.parametrize(
    "options, suffix, magic",
    [
        (["--x", "iters", "--smooth", "3"], ".png", b"\x89PNG"),
        (["--x", "flops", "--log_x"], ".svg", b"<?xml"),
        (["--x", "time"], ".pdf", b"%PDF"),
    ],
)
def test_every_axis_and_format(tmp_path, capsys, options, suffix, magic):
    runs = [synthetic_run(tmp_path / "a"), synthetic_run(tmp_path / "b", n_embd=64)]
    out = tmp_path / f"chart{suffix}"
    code, _, stderr = cli(plot.main, [*runs, *options, "--out", out], capsys)
    assert code == 0, stderr
    assert out.read_bytes().startswith(magic)


def test_bits_per_byte_compares_tokenizers_and_refuses_a_run_without_them(tmp_path, capsys):
    chars = synthetic_run(tmp_path / "chars", tokens_per_byte=1.0)
    bpe = synthetic_run(tmp_path / "bpe", tokens_per_byte=0.32)
    out = tmp_path / "bpb.png"
    code, _, stderr = cli(plot.main, [chars, bpe, "--y", "bpb", "--out", out], capsys)
    assert code == 0, stderr
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (1000, 700)
    unknown = synthetic_run(tmp_path / "unknown")
    code, _, stderr = cli(plot.main, [chars, unknown, "--y", "bpb", "--out", out], capsys)
    assert code == 2 and len(stderr.splitlines()) == 1
    assert stderr.startswith(f"error: --y bpb: {unknown} logged no val_bpb (its dataset's text bytes are unknown)")


def test_a_run_with_nothing_logged_yet_still_draws(tmp_path, capsys):
    folder = tmp_path / "starting"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text('{"iter": 0, "tok')  # no config.json yet, half a line
    code, stdout, stderr = cli(plot.main, [folder, "--out", tmp_path / "x.png"], capsys)
    assert code == 0, stderr
    assert stdout.splitlines()[1].split() == ["starting", "-", "-", "-", "-", "-", "-", "-"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["{missing}"], "{missing}: no metrics.jsonl there; pass run folders that train.py wrote (its out_dir)"),
        (["{run}", "--out", "loss.jpg"], "--out loss.jpg: name a .png, .svg, .pdf file"),
        (["{run}", "--smooth", "0"], "--smooth 0: give the number of logged steps to average, 1 or more"),
        (["{run}", "--log-x"], "unrecognized argument --log-x; did you mean --log_x?"),
        (["{broken}"], "{broken}/config.json: not valid JSON (Expecting property name enclosed in double quotes"),
    ],
)
def test_bad_input_is_one_line(tmp_path, capsys, argv, message):
    paths = {"missing": str(tmp_path / "missing"), "run": synthetic_run(tmp_path / "run")}
    paths["broken"] = synthetic_run(tmp_path / "broken")
    (tmp_path / "broken" / "config.json").write_text("{")
    code, _, stderr = cli(plot.main, [arg.format(**paths) for arg in argv], capsys)
    assert code == 2 and len(stderr.splitlines()) == 1 and stderr.startswith(f"error: {message.format(**paths)}")


def test_a_damaged_line_before_the_last_is_refused(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iter": 0}\n{"iter": 5, broken\n{"iter": 10}\n')
    with pytest.raises(DataError, match=r"metrics.jsonl: line 2 is not JSON; the file is damaged, remove that line"):
        read_records(str(path))
    path.write_text('{"iter": 0}\n{"iter": 5}\n{"iter": 1')  # the last line half-written: left out
    assert read_records(str(path)) == [{"iter": 0}, {"iter": 5}]


def test_labels_and_the_table_columns(tmp_path):
    run = Run.load(synthetic_run(tmp_path / "run-15m", lr=5e-4))
    assert run.label() == "run-15m · 27.8K · lr 5e-4"
    assert run.epoch_crossing("tokens") == pytest.approx(TRAIN_TOKENS)
    assert run.epoch_crossing("iters") == pytest.approx(TRAIN_TOKENS / 512)
    assert [human_count(n) for n in (950, 27_808, 10_700_000, 124_000_000, 1.5e9)] == [
        "950",
        "27.8K",
        "10.7M",
        "124M",
        "1.5B",
    ]
    assert [short_float(x) for x in (5e-4, 2.5e-4, 1e-3, 6e-5)] == ["5e-4", "2.5e-4", "1e-3", "6e-5"]
    assert moving_average([1, 2, 3, 4], 2) == [1, 1.5, 2.5, 3.5] and moving_average([1, 2], 1) == [1, 2]
    assert alarm_summary(["epochs_planned", "epoch_1", "epoch_2", "overfitting", "epoch_3"]) == (
        "epochs_planned, overfitting, epoch_1..3"
    )


def test_plot_reads_files_only_without_torch(tmp_path):
    run = synthetic_run(tmp_path / "run")
    code = (
        f"import sys, plot; plot.main([{run!r}, '--out', {str(tmp_path / 'x.png')!r}]); "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True)


def test_help(capsys):
    code, stdout, _ = cli(plot.main, ["--help"], capsys)
    assert code == 0 and "--x {tokens,iters,flops,time}" in stdout and "--log_x" in stdout and "--smooth N" in stdout


def test_hellaswag_scores_get_their_own_panel(tmp_path, capsys, monkeypatch):
    import matplotlib.figure

    drawn = []
    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", lambda fig, out: drawn.append(fig))
    plain = synthetic_run(tmp_path / "plain")
    scored = synthetic_run(tmp_path / "scored")
    with open(os.path.join(scored, "metrics.jsonl"), "a") as f:
        for it, acc in ((20, 0.26), (40, 0.27), (60, 0.29)):
            f.write(json.dumps({"iter": it, "tokens": it * 512, "hellaswag_acc_norm": acc}) + "\n")
    for runs in ([plain], [plain, scored]):
        assert cli(plot.main, [*runs, "--out", tmp_path / "x.png"], capsys)[0] == 0
    assert [len(fig.axes) for fig in drawn] == [2, 3]
    panel = drawn[1].axes[1]
    assert panel.get_ylabel() == "HellaSwag acc_norm"
    assert [list(line.get_ydata()) for line in panel.get_lines() if len(line.get_ydata()) == 3] == [[0.26, 0.27, 0.29]]
