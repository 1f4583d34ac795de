"""The small-scale recipe options: ReLU² MLP, zero-initialized output projections, logit
soft-capping, each computing what it says; the shipped _fast configs keep their baselines'
parameter budgets; models with them refuse to export where the format cannot hold them."""

import pytest
import torch
import torch.nn.functional as F

import configurator
from fitgpt import flops
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError
from fitgpt.hf import hf_architecture
from fitgpt.llama2c import check_exportable
from fitgpt.settings import TrainSettings
from model import GPT


def tiny(**options):
    torch.manual_seed(0)
    return GPT(GPTConfig(**{**dict(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32), **options}))


def test_relu2_mlp_is_relu_squared_at_four_times_the_width():
    mlp = tiny(mlp="relu2").transformer.h[0].mlp
    assert mlp.c_fc.weight.shape == (128, 32)
    x = torch.randn(3, 5, 32)
    expected = F.linear(F.relu(F.linear(x, mlp.c_fc.weight, mlp.c_fc.bias)) ** 2, mlp.c_proj.weight, mlp.c_proj.bias)
    torch.testing.assert_close(mlp(x), expected)


def test_zero_initialized_projections_make_every_block_the_identity():
    model = tiny(zero_init_proj=True, bias=False)
    projections = [p for n, p in model.named_parameters() if n.endswith("c_proj.weight")]
    assert len(projections) == 4 and all(torch.count_nonzero(p) == 0 for p in projections)
    assert torch.count_nonzero(model.transformer.h[0].attn.c_attn.weight) > 0  # the rest as before
    idx = torch.randint(0, 50, (2, 16))
    t = model.transformer
    x = t.wte(idx) + t.wpe(torch.arange(16))
    torch.testing.assert_close(model(idx, idx)[0], model.lm_head(t.ln_f(x))[..., :50])  # the blocks add nothing yet


def test_soft_capping_bounds_the_logits_and_is_tanh_of_the_raw_ones():
    raw = tiny()
    capped = tiny(logit_softcap=0.5)  # the same weights (same seed), a cap the raw logits exceed
    idx = torch.randint(0, 50, (2, 16))
    raw_logits, capped_logits = raw(idx, idx)[0], capped(idx, idx)[0]
    assert raw_logits.abs().max() > 0.5 > capped_logits.abs().max()
    torch.testing.assert_close(capped_logits, 0.5 * torch.tanh(raw_logits / 0.5))
    loss = capped(idx, idx)[1]
    torch.testing.assert_close(loss, F.cross_entropy(capped_logits.reshape(-1, 50), idx.reshape(-1)))
    with pytest.raises(ConfigError, match="logit_softcap must be >= 0"):
        GPTConfig(logit_softcap=-1.0)


@pytest.mark.parametrize(
    "fast, baseline, vocab",
    [("shakespeare_char_fast", "shakespeare_char", 65), ("tinystories_15m_fast", "tinystories_15m", 32000)],
)
def test_fast_configs_keep_their_baselines_parameter_budget(fast, baseline, vocab):
    counts = {}
    for name in (fast, baseline):
        s = TrainSettings(**configurator.parse_args([f"config/{name}.py"], TrainSettings))
        counts[name] = flops.param_count(GPTConfig.from_settings(s, vocab_size=vocab))
    assert abs(counts[fast] - counts[baseline]) < 0.01 * counts[baseline]


def test_export_refuses_options_the_formats_lack():
    with pytest.raises(ConfigError, match=r"logit_softcap=30.0 \(neither GPT-2 nor Llama caps the logits\)"):
        hf_architecture(GPTConfig(logit_softcap=30.0))
    with pytest.raises(ConfigError, match=r"mlp='relu2'"):
        hf_architecture(GPTConfig(mlp="relu2"))
    llama = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False)
    with pytest.raises(ConfigError, match=r"logit_softcap=15.0 \(run.c needs 0.0\)"):
        check_exportable(GPTConfig(**llama, logit_softcap=15.0), None, "")
