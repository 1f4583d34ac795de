import itertools
import os

import pytest
import torch

import configurator
from fitgpt import flops
from fitgpt.optim import build_optimizer
from fitgpt.settings import TrainSettings
from model import GPT, GPTConfig, apply_rope, rope_tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONS = dict(
    pos_emb=("learned", "rope"),
    norm=("layernorm", "rmsnorm"),
    mlp=("gelu", "swiglu"),
    n_kv_heads=(4, 2),
    bias=(True, False),
    tie_embeddings=(True, False),
    qk_norm=(False, True),
)
COMBOS = [dict(zip(OPTIONS, values)) for values in itertools.product(*OPTIONS.values())]


def tiny(seed=0, **options):
    torch.manual_seed(seed)
    return GPT(GPTConfig(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32, multiple_of=16, **options))


# every combination; half of them (every other one) only in the full run
EVERY_COMBINATION = [pytest.param(o, marks=pytest.mark.slow) if i % 2 else o for i, o in enumerate(COMBOS)]


@pytest.mark.parametrize("options", EVERY_COMBINATION, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_every_combination_is_causal_and_learns(options):
    model = tiny(**options)
    idx = torch.randint(0, 50, (2, 16))
    logits, _ = model(idx, idx)
    assert logits.shape == (2, 16, 50)
    changed = idx.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 50
    torch.testing.assert_close(model(changed, changed)[0][:, :9], logits[:, :9])

    x, y = idx[:, :-1], idx[:, 1:]
    opt = build_optimizer(model, TrainSettings(weight_decay=0.0, learning_rate=1e-2), "cpu")
    first = model(x, y)[1].item()
    for _ in range(15):
        opt.zero_grad()
        model(x, y)[1].backward()
        opt.step()
    assert model(x, y)[1].item() < first - 1.0


@pytest.mark.parametrize("options", COMBOS[::9], ids=lambda o: "-".join(str(v) for v in o.values()))
def test_parameter_count_and_flops_are_exact(options):
    model = tiny(**options)
    c = model.config
    hd, kv, hidden = c.head_dim, c.n_kv_heads, c.hidden_dim
    matmul_weights = (
        c.n_embd * (c.n_head + 2 * kv) * hd
        + c.n_head * hd * c.n_embd
        + (3 if c.mlp == "swiglu" else 2) * c.n_embd * hidden
    )  # per layer
    biases = (c.n_head + 2 * kv) * hd + c.n_embd + (2 if c.mlp == "swiglu" else 1) * hidden + c.n_embd
    norm = c.n_embd * (2 if c.norm == "layernorm" and c.bias else 1)
    per_layer = matmul_weights + (biases if c.bias else 0) + 2 * norm + (2 * hd if c.qk_norm else 0)
    embeddings = 64 * c.n_embd * (1 if c.tie_embeddings else 2)  # 50 tokens padded to 64 rows
    positions = c.block_size * c.n_embd if c.pos_emb == "learned" else 0
    expected = embeddings + positions + c.n_layer * per_layer + norm
    assert flops.param_count(c) == expected == sum(p.numel() for p in model.parameters())
    lm_head = 64 * c.n_embd
    attention = 12 * c.n_layer * c.n_embd * c.block_size
    assert flops.flops_per_token(c) == 6 * (c.n_layer * matmul_weights + lm_head) + attention


@pytest.mark.parametrize(
    "name, expected", [("260k", 2_294_464), ("15m", 15_191_712), ("42m", 41_689_600), ("110m", 109_529_856)]
)
def test_tinystories_configs_match_llama2c_parameter_counts(name, expected):
    settings = configurator.read_config_file(os.path.join(ROOT, f"config/tinystories_{name}.py"), TrainSettings)
    config = GPTConfig.from_settings(TrainSettings(**settings), vocab_size=32000)
    assert flops.param_count(config) == expected
    with torch.device("meta"):
        assert sum(p.numel() for p in GPT(config).parameters()) == expected


def test_rope_scores_depend_only_on_relative_position():
    q, k = torch.randn(1, 2, 8, 16), torch.randn(1, 2, 8, 16)
    cos, sin = rope_tables(16, 64, 10000.0)
    at_start = apply_rope(q, cos[:8], sin[:8]) @ apply_rope(k, cos[:8], sin[:8]).transpose(-1, -2)
    shifted = apply_rope(q, cos[37:45], sin[37:45]) @ apply_rope(k, cos[37:45], sin[37:45]).transpose(-1, -2)
    torch.testing.assert_close(at_start, shifted, atol=1e-5, rtol=1e-5)
    plain = q @ k.transpose(-1, -2)
    assert not torch.allclose(at_start, plain, atol=1e-3)


def test_gqa_equals_attention_with_repeated_kv_heads():
    gqa = tiny(n_kv_heads=2, pos_emb="rope").eval()
    full = tiny(n_kv_heads=4, pos_emb="rope").eval()
    state = gqa.state_dict()
    hd = 8
    for i in range(2):  # copy weights, duplicating each kv head for the 2 query heads it serves
        for kind in ("weight", "bias"):
            w = state[f"transformer.h.{i}.attn.c_attn.{kind}"]
            q, k, v = w.split([32, 2 * hd, 2 * hd])
            k, v = (
                t.view(2, hd, *t.shape[1:]).repeat_interleave(2, dim=0).reshape(4 * hd, *t.shape[1:]) for t in (k, v)
            )
            state[f"transformer.h.{i}.attn.c_attn.{kind}"] = torch.cat([q, k, v])
    full.load_state_dict(state)
    idx = torch.randint(0, 50, (2, 16))
    torch.testing.assert_close(gqa(idx, idx)[0], full(idx, idx)[0])
    assert flops.param_count(tiny(n_kv_heads=4).config) == flops.param_count(tiny().config)


@pytest.mark.parametrize(
    "options", [{}, {"pos_emb": "rope", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_heads": 2, "qk_norm": True}]
)
def test_kv_cache_generation_matches_uncached(options):
    model = tiny(**options).eval()
    prompt = torch.randint(0, 50, (3, 4))
    # 30 new tokens: the cache fills block_size (16), then generation goes on with a cropped window
    cached = model.generate(prompt, 30, temperature=0, use_cache=True)
    uncached = model.generate(prompt, 30, temperature=0, use_cache=False)
    assert torch.equal(cached, uncached)


def test_stop_token_and_top_p():
    model = tiny().eval()
    prompt = torch.zeros(1, 1, dtype=torch.long)
    greedy = model.generate(prompt, 5, temperature=0)
    stop = int(greedy[0, 3])
    stopped = model.generate(prompt, 5, temperature=0, stop_token=stop)
    assert stopped.shape[1] <= 4 and stopped[0, -1] == stop
    torch.manual_seed(0)
    # top_p tiny keeps only the most likely token: the same as greedy
    assert torch.equal(model.generate(prompt, 5, temperature=1.0, top_p=1e-6), greedy)
