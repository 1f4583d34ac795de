"""The speed levers' numerics on CPU (their speed is measured on GPUs, in docs/benchmarks.md):
the chunked loss and float8 training keep the losses of the plain path; compile_mode reaches
torch.compile; float8 is refused in one line where a GPU lacks fp8."""

from contextlib import nullcontext

import pytest
import torch

import train
from conftest import TINY_MODEL, tiny_settings
from fitgpt import distributed
from fitgpt.distributed import Distributed
from fitgpt.errors import SetupError
from fitgpt.runfiles import read_records
from fitgpt.runtime import convert_to_float8, float8_refusal
from model import GPT


def train_losses(char_dataset, tmp_path, name, **overrides):
    out = tmp_path / name
    train.run(tiny_settings(data_dir=char_dataset, out_dir=str(out), log_interval=1, **overrides))
    return [row["loss"] for row in read_records(str(out / "metrics.jsonl")) if "loss" in row]


def test_a_run_with_the_chunked_loss_trains_as_the_plain_one(char_dataset, tmp_path):
    plain = train_losses(char_dataset, tmp_path, "plain")
    chunked = train_losses(char_dataset, tmp_path, "chunked", loss_chunks=3)
    assert len(plain) == 20 and chunked == pytest.approx(plain, rel=1e-5)


def test_float8_training_tracks_the_plain_losses(char_dataset, tmp_path):
    pytest.importorskip("torchao", reason="float8 training needs torchao (requirements.txt)")
    plain = train_losses(char_dataset, tmp_path, "plain", dtype="bf16")
    float8 = train_losses(char_dataset, tmp_path, "float8", dtype="bf16", float8=True, float8_recipe="rowwise")
    # e4m3 keeps ~2 significant digits: over 20 steps the losses stay within a few hundredths
    assert max(abs(a - b) for a, b in zip(plain, float8)) < 0.05
    assert float8[-1] < float8[0] - 0.3  # and it learns


def test_float8_swaps_the_blocks_linear_layers_only():
    pytest.importorskip("torchao", reason="float8 training needs torchao (requirements.txt)")
    from fitgpt.architecture import GPTConfig

    model = GPT(GPTConfig(**TINY_MODEL, vocab_size=65))
    assert convert_to_float8(model, "tensorwise", "cpu") == 4 * TINY_MODEL["n_layer"]  # qkv, out, fc, proj
    assert type(model.lm_head).__name__ != "Float8Linear"


def test_float8_is_refused_where_the_gpu_lacks_fp8():
    assert float8_refusal("cuda:0", (9, 0)) is None and float8_refusal("cuda", (8, 9)) is None
    assert float8_refusal("cuda", (8, 0)) == (
        "float8=True needs fp8 matmuls (compute capability 8.9 or newer: H100, H200, RTX 4090, L40S), this GPU "
        "has 8.0; set float8=False"
    )
    assert "ROCm" in float8_refusal("cuda", (9, 4), rocm=True)
    assert float8_refusal("mps", None).endswith("this device is mps; set float8=False")
    with pytest.raises(SetupError, match="this device is mps"):
        convert_to_float8(torch.nn.Linear(16, 16), "tensorwise", "mps")


@pytest.mark.parametrize("mode, passed", [("default", None), ("max-autotune", "max-autotune")])
def test_compile_mode_reaches_torch_compile(monkeypatch, mode, passed):
    seen = []
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: seen.append(mode) or model)
    model = torch.nn.Linear(4, 4)
    assert (
        distributed.wrap(
            model, Distributed(), "cpu", compile=True, dtype="fp32", autocast=nullcontext(), compile_mode=mode
        )[0]
        is model
    )
    assert seen == [passed]
