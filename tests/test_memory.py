"""The memory model against what autograd really keeps (counted on CPU), against what torch.compile's
partitioner keeps (counted on CPU), against the H200's peaks, and activation checkpointing: less
memory, the same gradients."""

import itertools
import json
import os

import pytest
import torch

import train
from conftest import tiny_settings
from fitgpt import flops, hardware, memory, suite
from fitgpt.architecture import GPTConfig
from fitgpt.memory import Step, head_saved, layer_saved, training_memory
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


def cpu_rmsnorm_extra(config, tokens):
    """The CPU's composite RMSNorm keeps its fp32 normalized input too; CUDA's fused kernel, which
    the formulas describe, does not (two norms per block and the final one)."""
    return tokens * (2 * config.n_layer + 1) * 4 * config.n_embd if config.norm == "rmsnorm" else 0


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
    expected += cpu_rmsnorm_extra(config, tokens)
    if dtype == "bf16":
        expected += 2 * flops.matmul_weights(config)  # autocast's bf16 weight copies
    if config.pos_emb == "learned":
        expected += 8 * seq  # the position ids
    torch.manual_seed(0)
    assert saved_bytes(GPT(config), batch, seq, dtype) == expected + 4  # + the loss


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_qk_norm_is_approximate(dtype):
    config = GPTConfig(**SHAPE, pos_emb="rope", norm="rmsnorm", mlp="swiglu", qk_norm=True, n_layer=3)
    counted = saved_bytes(GPT(config), 2, 96, dtype)
    expected = 2 * 96 * (3 * layer_saved(config, dtype) + head_saved(config, dtype))
    expected += cpu_rmsnorm_extra(config, 2 * 96)
    expected += 2 * flops.matmul_weights(config) if dtype == "bf16" else 0
    assert abs(expected / counted - 1) < 0.12


def test_checkpointed_blocks_keep_only_their_input():
    config = GPTConfig(**SHAPE, n_layer=4)
    counted = saved_bytes(GPT(config, activation_checkpointing=2).train(), 2, 96, "fp32")  # blocks 0 and 2
    per_token = 2 * layer_saved(config, "fp32") + 2 * 4 * config.n_embd + head_saved(config, "fp32")
    assert counted == 2 * 96 * per_token + 8 * 96 + 4
    assert flops.checkpointed_layers(48, 1) == 48 and flops.checkpointed_layers(48, 5) == 10


# What torch.compile keeps, counted by its own partitioner (fitgpt/partition.py, FakeTensorMode on
# CPU): the formulas memory.py uses for compiled runs, option by option
COMPILED_OPTIONS = [
    dict(),
    dict(bias=True, dtype="fp16"),
    dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2),
    dict(pos_emb="rope", qk_norm=True, mlp="relu2"),
    dict(logit_softcap=15.0, tie_embeddings=False),
    dict(loss_chunks=4),
    dict(activation_checkpointing=1),
    dict(dtype="fp32", pos_emb="rope", norm="rmsnorm", mlp="swiglu"),
]


@pytest.mark.slow
@pytest.mark.parametrize("options", COMPILED_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()) or "-")
def test_compiled_formulas_are_the_partitioners_count(options):
    from fitgpt.partition import compiled_count

    options = dict(options)
    dtype = options.pop("dtype", "bf16")
    choices = {k: options.pop(k, 0) for k in ("activation_checkpointing", "loss_chunks")}  # not the shape
    config = GPTConfig(**{**SHAPE, "bias": False, **options}, n_layer=2)
    counted = compiled_count(config, dtype, block_size=32, **choices)
    if choices["activation_checkpointing"]:
        assert counted.layer_per_token == 4 * config.n_embd  # a checkpointed block keeps its fp32 input
    else:
        assert counted.layer_per_token == memory.compiled_layer_saved(config, dtype)
    remade = flops.checkpointed_layers(config.n_layer, choices["activation_checkpointing"])
    expected_head = memory.compiled_head_saved(config, dtype, remade > 0, choices["loss_chunks"])
    assert counted.head_per_token == pytest.approx(expected_head, abs=8)
    copies = 2 * memory.bf16_copied_weights(config, remade, choices["loss_chunks"]) if dtype != "fp32" else 0
    assert counted.weight_copies == pytest.approx(copies, rel=0.01)  # the compiled graph keeps the bf16 casts


# bench.py --suite on one H200 (torch 2.11, bf16, block 1024, GPT-2's vocabulary, 2026-12-04):
# docs/benchmarks.md. The targets: allocated within 5 % eager, 8 % compiled; reserved
# within 10 % and never under by more than 3 %.
H200 = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "results", "h200-2026-12-04-suite.json")


def h200_cases():
    with open(H200, encoding="utf-8") as f:
        records = json.load(f)["records"]
    return [r for r in records if r["kind"] == "bench" and "peak_memory_gib" in r.get("result", {})]


@pytest.mark.parametrize("record", h200_cases(), ids=lambda r: r["case"])
def test_h200_peaks_within_the_targets(record):
    allocated, reserved = suite.prediction(record)
    measured = record["result"]
    tolerance = 0.08 if record["settings"]["compile"] else 0.05
    assert -0.03 <= allocated / measured["peak_memory_gib"] - 1 <= tolerance
    assert -0.03 <= reserved / measured["peak_reserved_gib"] - 1 <= 0.10


def test_the_3b_recipe_needs_checkpointing_on_a_mi300x():
    config = GPTConfig(bias=False, n_layer=48, n_embd=2560, n_head=32)
    assert flops.param_count(config) == 3_906_521_600
    mi300x = hardware.gpu_by_key("mi300x")
    plain = training_memory(config, Step(32, "bf16", True))
    assert plain.total > memory.usable_memory(mi300x.memory_gib)  # about 200 GiB at micro-batch 32
    checkpointed = training_memory(config, Step(32, "bf16", True, activation_checkpointing=1))
    assert checkpointed.total < memory.usable_memory(mi300x.memory_gib) and checkpointed.total < plain.total / 2
    assert plain.weights == 4 * flops.param_count(config) and plain.optimizer == 2 * plain.weights


def test_fsdp_shards_divide_the_model_state():
    config = GPTConfig(bias=False, n_layer=48, n_embd=2560, n_head=32)
    one, eight = training_memory(config, Step(1, shards=1)), training_memory(config, Step(1, shards=8))
    assert eight.weights == one.weights / 8 and eight.optimizer == one.optimizer / 8


@pytest.mark.parametrize("every", [1, 2])
def test_checkpointing_gives_the_same_gradients(every):
    torch.manual_seed(0)
    config = GPTConfig(**SHAPE, n_layer=3, dropout=0.1)
    plain, checkpointed = (
        GPT(config),
        GPT(GPTConfig(**{**SHAPE, "n_layer": 3, "dropout": 0.1}), activation_checkpointing=every),
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


@pytest.mark.parametrize("dtype, softcap", [("fp32", 0.0), ("bf16", 0.0), ("fp32", 15.0)])
def test_chunked_loss_keeps_no_logits_and_matches_the_plain_loss(dtype, softcap):
    config = GPTConfig(**SHAPE, n_layer=2, logit_softcap=softcap)
    torch.manual_seed(0)
    plain = GPT(config).train()
    # 192 tokens: uneven chunks of 39
    chunked = GPT(GPTConfig(**SHAPE, n_layer=2, logit_softcap=softcap), loss_chunks=5).train()
    chunked.load_state_dict(plain.state_dict())
    x = torch.randint(0, config.vocab_size, (2, 96))
    y = torch.randint(0, config.vocab_size, (2, 96))
    y[0, :30] = -1  # ignored targets count in neither sum nor mean
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bf16")
    losses = []
    for model in (plain, chunked):
        with autocast:
            logits, loss = model(x, y)
        loss.backward()
        losses.append(loss)
    assert logits is None
    tolerance = 1e-6 if dtype == "fp32" else 2e-3
    assert torch.allclose(losses[0], losses[1], rtol=tolerance)
    # the output layer's weight gradient is summed over chunks in fp32, not made by one bf16
    # matmul: within bf16's precision (2^-8) of the plain one; every other gradient is the same
    for (name, p), q in zip(plain.named_parameters(), chunked.parameters()):
        assert (p.grad - q.grad).norm() <= (1e-6 if dtype == "fp32" else 1e-2) * p.grad.norm(), name
    # what autograd keeps: the blocks' activations and the head without its vocabulary-wide log-softmax
    tokens = 2 * 96
    expected = tokens * (2 * layer_saved(config, dtype) + head_saved(config, dtype, loss_chunks=5)) + 8 * 96
    if dtype == "bf16":  # autocast's bf16 weight copies, but the output layer's: each chunk casts its own
        expected += 2 * memory.bf16_copied_weights(config, loss_chunks=5)
    assert saved_bytes(chunked, 2, 96, dtype) == expected + 8  # + the int64 count the mean divides by
    kept_input = 4 - memory.ACTIVATION_BYTES[dtype]  # lm_head's input stays fp32 for its chunks
    assert (
        head_saved(config, dtype) - head_saved(config, dtype, loss_chunks=5) == 4 * config.vocab_size - kept_input * 64
    )


def test_chunked_loss_lowers_the_predicted_peak_of_gpt2():
    config = GPTConfig(bias=False)
    plain, chunked = Step(16, compile=False), Step(16, compile=False, loss_chunks=8)
    saved = training_memory(config, plain).total - training_memory(config, chunked).total
    # per token: the fp32 log-softmax (4 V) and 7/8 of the loss's two buffers (8 V), less lm_head's fp32 input
    per_token = 4 * 50257 + 8 * 50257 - 12 * 50257 / 8 - 2 * 768
    head_copy = 2 * 50304 * 768  # and the output layer's bf16 copy: each chunk casts its own
    assert saved == pytest.approx(16 * 1024 * per_token + head_copy)
