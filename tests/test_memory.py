"""The memory model against what autograd really keeps (counted on CPU), against GPU peaks, and
activation checkpointing: less memory, the same gradients."""

import itertools

import pytest
import torch

import train
from conftest import tiny_settings
from fitgpt import accounting
from fitgpt.accounting import GIB, head_saved, layer_saved, training_memory
from fitgpt.architecture import GPTConfig
from model import GPT


def saved_bytes(model, batch, seq, dtype):
    """Bytes of the distinct tensors autograd saves for backward in one forward, parameters and
    buffers aside (the same storage counted once, as it is in memory)."""
    own = {t.data_ptr() for t in [*model.parameters(), *model.buffers()]}
    storages = {}

    def pack(t):
        if t.data_ptr() not in own:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    x = torch.randint(0, model.config.vocab_size, (batch, seq))
    y = torch.randint(0, model.config.vocab_size, (batch, seq))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        model(x, y)
    return sum(storages.values())


OPTIONS = dict(pos_emb=("learned", "rope"), norm=("layernorm", "rmsnorm"), mlp=("gelu", "swiglu"), n_kv_heads=(4, 2))
COMBOS = [dict(zip(OPTIONS, values)) for values in itertools.product(*OPTIONS.values())]
SHAPE = dict(block_size=96, vocab_size=300, n_head=4, n_embd=64, bias=False, multiple_of=32)


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
@pytest.mark.parametrize("options", COMBOS, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_saved_bytes_are_exactly_the_formulas(options, dtype):
    config = GPTConfig(**SHAPE, **options, n_layer=3)
    batch, seq = 2, 96
    tokens = batch * seq
    expected = tokens * (config.n_layer * layer_saved(config, dtype) + head_saved(config, dtype))
    if dtype == "bf16":
        expected += 2 * accounting.matmul_weights(config)  # autocast's bf16 weight copies
    if config.pos_emb == "learned":
        expected += 8 * seq  # the position ids
    torch.manual_seed(0)
    assert saved_bytes(GPT(config), batch, seq, dtype) == expected + 4  # + the loss


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_qk_norm_is_approximate(dtype):
    config = GPTConfig(**SHAPE, pos_emb="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, n_layer=3)
    counted = saved_bytes(GPT(config), 2, 96, dtype)
    expected = 2 * 96 * (3 * layer_saved(config, dtype) + head_saved(config, dtype))
    expected += 2 * accounting.matmul_weights(config) if dtype == "bf16" else 0
    assert abs(expected / counted - 1) < 0.12


def test_checkpointed_blocks_keep_only_their_input():
    config = GPTConfig(**SHAPE, n_layer=4, activation_checkpointing=2)  # blocks 0 and 2
    counted = saved_bytes(GPT(config).train(), 2, 96, "fp32")
    per_token = 2 * layer_saved(config, "fp32") + 2 * 4 * config.n_embd + head_saved(config, "fp32")
    assert counted == 2 * 96 * per_token + 8 * 96 + 4
    assert accounting.checkpointed_layers(48, 1) == 48 and accounting.checkpointed_layers(48, 5) == 10


# Peaks measured with bench.py on one H100 80GB (bf16, block 1024, torch 2.11, vocab 50304, no
# bias; docs/benchmarks.md) by code that still held the logits through backward: the model of
# today's code plus those 2 bytes x 50304 per token is what they measured.
GPU_PEAKS = [
    (dict(), 16, True, 11.51),
    (dict(), 32, True, 21.28),
    (dict(), 64, True, 40.76),
    (dict(), 16, False, 17.58),
    (dict(n_layer=48, n_embd=1600, n_head=25), 8, True, 44.36),
]


@pytest.mark.parametrize("shape, batch, compiled, measured", GPU_PEAKS)
def test_gpu_peaks_within_ten_percent(shape, batch, compiled, measured):
    config = GPTConfig(bias=False, **shape)
    predicted = training_memory(config, batch, "bf16", compiled).total + 2 * 50304 * batch * 1024
    assert abs(predicted / GIB / measured - 1) < 0.10


def test_the_3b_recipe_needs_checkpointing_on_a_mi300x():
    config = GPTConfig(bias=False, n_layer=48, n_embd=2560, n_head=32)
    assert accounting.param_count(config) == 3_906_521_600
    mi300x = accounting.gpu_by_key("mi300x")
    plain = training_memory(config, 32, "bf16", True)
    assert plain.total > accounting.usable_memory(mi300x.memory_gib)  # about 200 GiB at micro-batch 32
    checkpointed = training_memory(config, 32, "bf16", True, activation_checkpointing=1)
    assert checkpointed.total < accounting.usable_memory(mi300x.memory_gib) and checkpointed.total < plain.total / 2
    assert plain.weights == 4 * accounting.param_count(config) and plain.optimizer == 2 * plain.weights


def test_fsdp_shards_divide_the_model_state():
    config = GPTConfig(bias=False, n_layer=48, n_embd=2560, n_head=32)
    one, eight = training_memory(config, 1, shards=1), training_memory(config, 1, shards=8)
    assert eight.weights == one.weights / 8 and eight.optimizer == one.optimizer / 8


@pytest.mark.parametrize("every", [1, 2])
def test_checkpointing_gives_the_same_gradients(every):
    torch.manual_seed(0)
    config = GPTConfig(**SHAPE, n_layer=3, dropout=0.1)
    plain, checkpointed = (
        GPT(config),
        GPT(GPTConfig(**{**SHAPE, "n_layer": 3, "dropout": 0.1}, activation_checkpointing=every)),
    )
    checkpointed.load_state_dict(plain.state_dict())
    x, y = torch.randint(0, 300, (2, 96)), torch.randint(0, 300, (2, 96))
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same dropout masks
        model(x, y)[1].backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters()):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6, msg=name)


def test_resume_may_turn_checkpointing_on(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out, max_iters=10, eval_interval=10))
    final = train.run(
        tiny_settings(init_from="resume", out_dir=out, max_iters=20, activation_checkpointing=1),
        {"max_iters": 20, "activation_checkpointing": 1},
    )
    assert final["iter"] == 20


@pytest.mark.slow
def test_checkpointing_with_compile_trains(char_dataset, tmp_path):
    final = train.run(
        tiny_settings(
            data_dir=char_dataset,
            out_dir=str(tmp_path / "run"),
            compile=True,
            activation_checkpointing=1,
            max_iters=10,
            eval_interval=10,
            eval_iters=2,
        )
    )
    assert final["val_loss"] < 4.0
