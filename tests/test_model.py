import math

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fitgpt import flops
from fitgpt.errors import ConfigError
from fitgpt.optim import build_optimizer
from fitgpt.settings import TrainSettings
from model import GPT, GPTConfig, decode_layout, sample_next


def tiny(**overrides):
    args = dict(block_size=32, vocab_size=97, n_layer=2, n_head=4, n_embd=32, dropout=0.0)
    args.update(overrides)
    torch.manual_seed(0)
    return GPT(GPTConfig(**args))


def test_forward_shapes():
    model = tiny()
    idx = torch.randint(0, 97, (3, 20))
    logits, loss = model(idx, idx)
    assert logits.shape == (3, 20, 97) and loss.shape == ()
    logits, loss = model(idx)
    assert logits.shape == (3, 1, 97) and loss is None


def test_initial_loss_is_near_uniform():
    model = tiny(vocab_size=500)
    idx = torch.randint(0, 500, (8, 32))
    _, loss = model(idx, torch.randint(0, 500, (8, 32)))
    assert abs(loss.item() - math.log(500)) < 0.1


def test_last_position_logits_match_full_forward():
    model = tiny().eval()
    idx = torch.randint(0, 97, (2, 16))
    full, _ = model(idx, idx)
    last, _ = model(idx)
    torch.testing.assert_close(last[:, 0], full[:, -1])


def test_causality():
    model = tiny().eval()
    idx = torch.randint(0, 97, (1, 24))
    changed = idx.clone()
    changed[0, 15] = (changed[0, 15] + 1) % 97
    a, _ = model(idx, idx)
    b, _ = model(changed, changed)
    torch.testing.assert_close(a[:, :15], b[:, :15])
    assert not torch.allclose(a[:, 15:], b[:, 15:])


def test_sdpa_matches_manual_attention():
    model = tiny().eval()
    attn = model.transformer.h[0].attn
    x = torch.randn(2, 10, 32)
    q, k, v = attn.c_attn(x).split(32, dim=2)
    q, k, v = (t.view(2, 10, 4, 8).transpose(1, 2) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / math.sqrt(8)
    scores = scores.masked_fill(torch.triu(torch.ones(10, 10, dtype=torch.bool), 1), float("-inf"))
    manual = (F.softmax(scores, dim=-1) @ v).transpose(1, 2).reshape(2, 10, 32)
    torch.testing.assert_close(attn(x), attn.c_proj(manual))


def test_embeddings_are_tied():
    model = tiny()
    assert model.lm_head.weight is model.transformer.wte.weight
    untied = tiny(tie_embeddings=False)
    assert untied.lm_head.weight is not untied.transformer.wte.weight
    # 97 tokens padded to 128 rows; the count is of the tensors as they are, padding included
    assert flops.param_count(untied.config) == flops.param_count(model.config) + 128 * 32


def test_residual_projections_use_scaled_init():
    model = tiny(n_layer=8, n_embd=256, n_head=4)
    std = model.transformer.h[0].mlp.c_proj.weight.std().item()
    assert abs(std - 0.02 / math.sqrt(16)) < 0.001
    assert abs(model.transformer.h[0].mlp.c_fc.weight.std().item() - 0.02) < 0.001


def test_generate_lengths():
    model = tiny().eval()
    idx = torch.randint(0, 97, (2, 5))
    assert model.generate(idx, 7).shape == (2, 12)
    # longer than block_size: the context is cropped, generation still goes on
    assert model.generate(idx, 40, top_k=5).shape == (2, 45)


def test_sampling_follows_the_distribution_and_skips_cut_tokens():
    probs = torch.tensor([0.1, 0.0, 0.2, 0.6, 0.0, 0.1])
    logits = probs.log().expand(4, -1)  # 4 rows sampled at once
    torch.manual_seed(0)
    draws = torch.cat([sample_next(logits) for _ in range(5000)]).flatten()  # 20000 samples
    frequencies = torch.bincount(draws, minlength=6) / draws.numel()
    assert frequencies[1] == 0 and frequencies[4] == 0  # probability-0 tokens are never drawn
    torch.testing.assert_close(frequencies, probs, atol=0.015, rtol=0)  # ~5 standard errors
    # top_k=2 keeps tokens 3 and 2 only, in proportion 0.6 : 0.2
    draws = torch.cat([sample_next(logits, top_k=2) for _ in range(2500)]).flatten()
    assert set(draws.tolist()) == {2, 3}
    assert abs((draws == 3).float().mean().item() - 0.75) < 0.03


def test_decode_layout_gives_the_same_logits_and_leaves_the_model_unchanged():
    model = tiny(bias=True).eval()
    idx = torch.randint(0, 97, (2, 9))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    expected, _ = model(idx)
    with decode_layout(model):
        assert model.lm_head.decode_weight.shape == (32, 128)  # (in, out), the padded vocabulary
        assert model.lm_head.decode_weight.is_contiguous()
        model.generate(idx, 3)  # generate's own decode_layout, nested, keeps the outer one's copies
        assert model.lm_head.decode_weight is not None
        during, _ = model(idx)
    torch.testing.assert_close(during, expected, atol=1e-5, rtol=1e-5)
    assert all(m.decode_weight is None for m in model.modules() if hasattr(m, "decode_weight"))
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_gpt2_small_parameter_count():
    unpadded = GPTConfig(vocab_size=50257, vocab_multiple=1)  # Hugging Face's gpt2
    assert flops.param_count(unpadded) == 124_439_808
    assert flops.param_count(unpadded, include_position_embeddings=False) == 124_439_808 - 1024 * 768
    padded = GPTConfig()  # GPT-2's vocabulary padded to 50304 rows, as trained here (and by nanoGPT)
    assert padded.vocab_size == 50257 and padded.padded_vocab_size == 50304
    assert flops.param_count(padded) == 124_439_808 + 47 * 768
    with torch.device("meta"):
        assert sum(p.numel() for p in GPT(padded).parameters()) == flops.param_count(padded)


def test_padded_vocabulary_changes_nothing_but_the_matmul_shape():
    """The padding rows' logits are cut off: loss and logits are those of the real vocabulary,
    equal to an unpadded model with the same weights, and sampling never returns a padding id."""
    padded = tiny(vocab_size=97, vocab_multiple=64).eval()
    unpadded = tiny(vocab_size=97, vocab_multiple=1).eval()
    state = padded.state_dict()
    for name in ("transformer.wte.weight", "lm_head.weight"):
        state[name] = state[name][:97]
    unpadded.load_state_dict(state)
    idx = torch.randint(0, 97, (2, 16))
    (a, loss_a), (b, loss_b) = padded(idx, idx), unpadded(idx, idx)
    assert padded.lm_head.weight.shape == (128, 32) and a.shape == (2, 16, 97)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(loss_a, loss_b)
    with torch.no_grad():
        padded.lm_head.weight[97:] = 100.0  # padding logits that would win every draw if they were not cut
    assert padded.generate(idx, 20, temperature=1.0).max() < 97


@pytest.mark.parametrize("options", [{}, {"n_kv_heads": 2, "mlp": "swiglu", "pos_emb": "rope", "norm": "rmsnorm"}])
def test_flops_per_token_matches_counted_flops(options):
    model = tiny(**options)
    idx = torch.randint(0, 97, (2, 32))
    # the math backend runs attention as plain matmuls, which the counter sees
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        _, loss = model(idx, idx)
        loss.backward()
    assert counter.get_total_flops() == flops.flops_per_token(model.config, 32) * idx.numel()


def test_config_errors():
    with pytest.raises(ConfigError, match="n_embd .* divisible by n_head"):
        GPTConfig(n_embd=100, n_head=3)
    with pytest.raises(ConfigError, match="n_layer must be positive"):
        GPTConfig(n_layer=0)


def test_optimizer_decays_only_matrices():
    model = tiny()
    opt = build_optimizer(model, TrainSettings(weight_decay=0.1, learning_rate=1e-3), "cpu")
    decay, no_decay = opt.param_groups
    assert all(p.dim() >= 2 for p in decay["params"]) and decay["weight_decay"] == 0.1
    assert all(p.dim() < 2 for p in no_decay["params"]) and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
