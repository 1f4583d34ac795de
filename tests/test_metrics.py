"""What a run reports: config.json, the rows of metrics.jsonl, early stopping, and wandb, which
logs the same records when it works and never stops a run when it does not."""

import glob
import json
import os
import struct
import sys
import types

import pytest
import torch

import train
from conftest import tiny_settings
from fitgpt import flops
from fitgpt.architecture import GPTConfig
from fitgpt.runfiles import MetricsLog, read_records, read_run_config, write_run_config
from fitgpt.settings import TrainSettings
from fitgpt.wandb_run import WandbRun


def test_config_json_round_trips_and_rows_carry_flops_time_and_lr(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    settings = tiny_settings(data_dir=char_dataset, out_dir=out)
    train.run(settings)
    config = read_run_config(out)
    assert TrainSettings(**config["settings"]) == settings
    model = GPTConfig(**config["model_args"])
    assert model == GPTConfig(**torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["model_args"])
    assert config["params"] == flops.param_count(model) and config["tokens_per_iter"] == 512
    assert config["flops_per_token"] == flops.flops_per_token(model)
    dataset = config["dataset"]
    assert dataset["path"] == os.path.abspath(char_dataset) and dataset["vocab_size"] == 62
    shard_bytes = sum(os.path.getsize(p) - 1024 for p in glob.glob(os.path.join(char_dataset, "*.bin")))
    assert dataset["train_tokens"] + dataset["val_tokens"] == shard_bytes // 2
    assert config["device"] == "cpu" and config["dtype"] == "fp32" and config["world_size"] == 1
    assert config["versions"]["torch"] == torch.__version__
    assert config["git"] is None or len(config["git"]["commit"]) == 40
    write_run_config(str(tmp_path), config)
    assert read_run_config(str(tmp_path)) == config

    records = read_records(os.path.join(out, "metrics.jsonl"))
    first = records[0]
    assert first["iter"] == 0 and first["flops"] == 0 and first["epoch"] == 0.0 and first["elapsed_s"] == 0.0
    assert first["lr"] == pytest.approx(settings.learning_rate / (settings.warmup_iters + 1))
    steps = [r for r in records if "loss" in r]
    assert all(r["flops"] == r["tokens"] * config["flops_per_token"] for r in steps)
    assert [r["elapsed_s"] for r in steps] == sorted(r["elapsed_s"] for r in steps) and steps[-1]["elapsed_s"] > 0
    assert torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["elapsed_s"] >= steps[-1]["elapsed_s"] - 0.1


def test_early_stop_on_a_plateau(char_dataset, tmp_path, capsys):
    out = str(tmp_path / "run")
    flat = dict(learning_rate=0.0, min_lr=0.0, max_iters=100, lr_decay_iters=100, eval_interval=5, log_interval=5)
    final = train.run(tiny_settings(data_dir=char_dataset, out_dir=out, patience=2, early_stop=True, **flat))
    stdout = capsys.readouterr().out
    assert final["iter"] == 10  # evaluations at 0, 5 and 10, the last two no better than the first
    assert "ALARM plateau at iteration 10: val loss has not improved for 2 evaluations" in stdout
    assert "(early stop: val loss has not improved for 2 evaluations" in stdout  # the checkpoint's reason
    assert torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["iter_num"] == 10
    assert [r["alarm"] for r in read_records(os.path.join(out, "metrics.jsonl")) if "alarm" in r] == ["plateau"]


def test_resume_drops_a_half_written_last_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"iter": 0, "tokens": 0}\n{"iter": 10, "tokens": 5}\n{"iter": 20, "tokens": 10}\n{"iter": 2')
    log = MetricsLog(str(path), resume_iter=10)
    assert log.kept == [{"iter": 0, "tokens": 0}, {"iter": 10, "tokens": 5}]
    assert path.read_text() == '{"iter": 0, "tokens": 0}\n{"iter": 10, "tokens": 5}\n'


def wandb_records(path):
    """The records of a wandb offline run file: LevelDB-log blocks of protobuf Records."""
    from wandb.proto import wandb_internal_pb2

    data, block = open(path, "rb").read(), 32768
    position, pending, records = 7, b"", []  # after the ':W&B' header
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pending += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def test_wandb_offline_writes_a_run_with_every_record(char_dataset, tmp_path, monkeypatch):
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out, wandb_log=True, wandb_run_name="tiny"))
    wandb.teardown()  # its service process writes the run file; this waits until it has
    (path,) = glob.glob(str(tmp_path / "wandb" / "offline-run-*" / "run-*.wandb"))
    records = wandb_records(path)
    history = {}
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item}
            history.setdefault(items["_step"], {}).update(items)
    logged = read_records(os.path.join(out, "metrics.jsonl"))
    assert sorted(history) == sorted({r["iter"] for r in logged}) and history[0]["iter"] == 0
    for row in logged:
        assert {k: history[row["iter"]][k] for k in row} == pytest.approx(row, nan_ok=True)
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert run.display_name == "tiny" and config["settings"] == read_run_config(out)["settings"]


def test_a_run_without_wandb_installed_trains_and_warns_once(char_dataset, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    out = str(tmp_path / "run")
    final = train.run(tiny_settings(data_dir=char_dataset, out_dir=out, wandb_log=True))
    stdout = capsys.readouterr().out
    assert final["iter"] == 20 and stdout.count("WARNING: wandb") == 1
    assert "WARNING: wandb_log=True but wandb is not installed (pip install wandb)" in stdout
    assert [r["iter"] for r in read_records(os.path.join(out, "metrics.jsonl")) if "loss" in r][-1] == 20


class FakeRun:
    """A wandb run whose log fails from its fail_after-th call on."""

    def __init__(self, fail_after=None):
        self.logged, self.fail_after, self.finished = [], fail_after, False

    def log(self, record, step):
        if self.fail_after is not None and len(self.logged) >= self.fail_after:
            raise ConnectionError("the wandb service went away")
        self.logged.append((step, record))

    def finish(self):
        self.finished = True


def fake_wandb(monkeypatch, init):
    monkeypatch.setitem(sys.modules, "wandb", types.SimpleNamespace(init=init))


def test_wandb_without_an_account_logs_offline(monkeypatch, capsys):
    run = FakeRun()

    def init(mode=None, **kwargs):
        if mode != "offline":
            raise RuntimeError("No API key configured. Use `wandb login` to log in.")
        return run

    fake_wandb(monkeypatch, init)
    log = WandbRun("fitgpt", "run", {"settings": {}})
    log.log({"iter": 0, "val_loss": 4.0})
    log.log({"iter": 0, "tokens": 0, "alarm": "epochs_planned", "message": "too many epochs"})
    log.finish()
    assert run.logged == [(0, {"iter": 0, "val_loss": 4.0}), (0, {"alarm/epochs_planned": "too many epochs"})]
    assert run.finished
    assert capsys.readouterr().out == (
        "WARNING: wandb could not start online (RuntimeError: No API key configured. Use `wandb login` to log in.); "
        "logging offline instead (upload later: wandb sync)\n"
    )


def test_wandb_that_cannot_start_at_all_warns_once(monkeypatch, capsys):
    def init(**kwargs):
        raise ValueError("bad settings")

    fake_wandb(monkeypatch, init)
    log = WandbRun("fitgpt", "run", {})
    log.log({"iter": 5, "loss": 3.0})
    log.finish()
    assert capsys.readouterr().out == (
        "WARNING: wandb could not start (ValueError: bad settings; offline: ValueError: bad settings); "
        "metrics go to metrics.jsonl only\n"
    )


def test_wandb_failing_mid_run_warns_once_and_the_run_goes_on(char_dataset, tmp_path, monkeypatch, capsys):
    run = FakeRun(fail_after=2)
    fake_wandb(monkeypatch, lambda **kwargs: run)
    out = str(tmp_path / "run")
    final = train.run(tiny_settings(data_dir=char_dataset, out_dir=out, wandb_log=True))
    stdout = capsys.readouterr().out
    assert final["iter"] == 20 and len(run.logged) == 2 and run.logged[0][0] == 0
    assert stdout.count("WARNING: wandb") == 1
    assert "WARNING: wandb stopped logging (ConnectionError: the wandb service went away); metrics go on" in stdout
    rows = read_records(os.path.join(out, "metrics.jsonl"))
    # the plan check's row at the second logged step, and the run's end row
    assert [r["iter"] for r in rows] == [0, 5, 10, 10, 15, 20, 20] and rows[-1]["finished"]
