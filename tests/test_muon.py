"""optimizer='muon': which parameters Muon and AdamW each get, their updates against a hand-written
reference, the schedule scaling every group, a run with the guard, and the memory model."""

import copy
import json
import math
import os

import pytest
import torch

import plan
import train
from conftest import cli, tiny_settings
from fitgpt import formatting, memory
from fitgpt.architecture import GPTConfig
from fitgpt.errors import ConfigError
from fitgpt.optim import MuonAdamW, build_optimizer, get_lr, set_lr
from fitgpt.training import skip_nonfinite
from model import GPT


def tiny(**options):
    torch.manual_seed(0)
    config = dict(block_size=16, vocab_size=50, n_layer=2, n_head=4, n_embd=32, multiple_of=16)
    return GPT(GPTConfig(**{**config, **options}))


@pytest.mark.parametrize(
    "options",
    [
        dict(),  # GPT-2: learned positions, LayerNorm with biases, tied head
        dict(bias=True, tie_embeddings=False, qk_norm=True),
        dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, tie_embeddings=False),
    ],
)
def test_every_parameter_lands_in_exactly_one_group(options):
    model = tiny(**options)
    optimizer = build_optimizer(model, tiny_settings(optimizer="muon", **options), "cpu")
    assert isinstance(optimizer, MuonAdamW)
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert len(grouped) == len(set(grouped)) and set(grouped) == {id(p) for p in model.parameters()}
    name_of = {id(p): n for n, p in model.named_parameters()}
    muon = {name_of[id(p)] for group in optimizer.muon.param_groups for p in group["params"]}
    adamw = {name_of[id(p)] for group in optimizer.adamw.param_groups for p in group["params"]}
    assert muon == {n for n, p in model.named_parameters() if n.startswith("transformer.h.") and p.dim() == 2}
    assert all(".attn.c_" in n or ".mlp.c_" in n for n in muon)
    assert "transformer.wte.weight" in adamw and ("lm_head.weight" in adamw) != model.config.tie_embeddings
    assert ("transformer.wpe.weight" in adamw) == (model.config.pos_emb == "learned")
    params = dict(model.named_parameters())
    rest = adamw - {"transformer.wte.weight", "transformer.wpe.weight", "lm_head.weight"}
    assert rest and all(params[n].dim() == 1 for n in rest)  # norms' gains, biases


def newton_schulz(g: torch.Tensor, steps: int = 5) -> torch.Tensor:
    """The quintic Newton-Schulz iteration of Muon's paper, in float64."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g.double()
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / x.norm()
    for _ in range(steps):
        s = x @ x.T
        x = a * x + (b * s + c * s @ s) @ x
    return (x.T if tall else x).float()


def group_of(name: str, p: torch.Tensor) -> str:
    if name.startswith("transformer.h.") and p.dim() == 2:
        return "muon"
    if name.startswith(("transformer.wte.", "transformer.wpe.")):
        return "embedding"
    return "head" if name.startswith("lm_head.") else "rest"


@torch.no_grad()
def reference_steps(model, grads, lrs, s):
    """Muon (Nesterov momentum, decoupled decay, lr scaled by sqrt(max(1, rows/cols))) on the blocks'
    matrices and textbook AdamW on the rest, written out parameter by parameter, with the given
    gradients (one dict of them per step)."""
    peak = {"muon": s.muon_lr, "embedding": s.embedding_lr, "head": s.head_lr, "rest": s.learning_rate}
    decay = {"muon": s.muon_weight_decay, "embedding": s.weight_decay, "head": s.weight_decay, "rest": 0.0}
    state = {}
    for t, (step_grads, factor) in enumerate(zip(grads, lrs), start=1):
        for name, p in model.named_parameters():
            kind, g = group_of(name, p), step_grads[name]
            lr = peak[kind] * factor
            p.mul_(1 - lr * decay[kind])
            if kind == "muon":
                buf = state[name] = s.muon_momentum * state.get(name, torch.zeros_like(g)) + g
                update = newton_schulz(g + s.muon_momentum * buf)
                p.sub_(lr * math.sqrt(max(1.0, p.shape[0] / p.shape[1])) * update)
            else:
                m, v = state.get(name, (torch.zeros_like(g), torch.zeros_like(g)))
                m, v = s.beta1 * m + (1 - s.beta1) * g, s.beta2 * v + (1 - s.beta2) * g * g
                state[name] = (m, v)
                p.sub_(lr * (m / (1 - s.beta1**t)) / ((v / (1 - s.beta2**t)).sqrt() + 1e-8))


def test_muon_steps_equal_a_hand_written_reference():
    s = tiny_settings(
        optimizer="muon",
        muon_lr=0.05,
        muon_weight_decay=0.1,
        learning_rate=0.01,
        embedding_lr=0.03,
        head_lr=0.002,
        weight_decay=0.1,
    )
    model = tiny(tie_embeddings=False)
    start = copy.deepcopy(model.state_dict())
    reference = copy.deepcopy(model)
    torch.manual_seed(1)
    batches = [(torch.randint(0, 50, (32, 16)), torch.randint(0, 50, (32, 16))) for _ in range(3)]
    lrs = [1.0, 0.5, 0.25]  # the schedule's lr over learning_rate at each step
    optimizer, grads = build_optimizer(model, s, "cpu"), []
    for (x, y), factor in zip(batches, lrs):
        set_lr(optimizer, s.learning_rate * factor)
        optimizer.zero_grad()
        model(x, y)[1].backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
        optimizer.step()
    reference_steps(reference, grads, lrs, s)
    expected = dict(reference.named_parameters())
    for name, p in model.named_parameters():
        moved, error = expected[name] - start[name], p - expected[name]
        assert moved.abs().max() > 1e-4, name  # every parameter trained
        if group_of(name, p) == "muon":  # torch's Newton-Schulz runs in bf16: about 3 % of the update here
            assert error.norm() < 0.06 * moved.norm(), name
        else:  # AdamW in fp32
            assert error.abs().max() < 1e-6, name


def test_the_fp16_grad_scaler_unscales_both_optimizers_and_skips_an_inf_step():
    """train.py's update with a GradScaler, as it runs fp16 (on CPU at the optimizer
    level: fp16 training itself needs a GPU): a scaled step equals an unscaled one, and an Inf
    gradient in one block matrix skips the whole step, Muon's and AdamW's, and lowers the scale."""
    s = tiny_settings(optimizer="muon", tie_embeddings=False)
    plain, scaled = tiny(tie_embeddings=False), tiny(tie_embeddings=False)
    optimizers = {id(m): build_optimizer(m, s, "cpu") for m in (plain, scaled)}
    scalers = {
        id(plain): torch.amp.GradScaler("cpu", enabled=False),
        id(scaled): torch.amp.GradScaler("cpu", init_scale=2.0**12),
    }
    torch.manual_seed(1)
    x, y = torch.randint(0, 50, (8, 16)), torch.randint(0, 50, (8, 16))

    def step(model, poison=False):
        loss = model(x, y)[1]
        scalers[id(model)].scale(loss).backward()
        if poison:
            model.transformer.h[0].mlp.c_fc.weight.grad[0, 0] = math.inf
        optimizer, scaler = optimizers[id(model)], scalers[id(model)]
        scaler.unscale_(optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0).item()
        # on_nonfinite='stop': only the scaler may skip here
        if not skip_nonfinite(s, 0, loss.item(), grad_norm, scaled=scaler.is_enabled(), in_a_row=0):
            scaler.step(optimizer)
        scaler.update()
        optimizer.zero_grad(set_to_none=True)

    step(plain), step(scaled)
    for (name, a), b in zip(plain.named_parameters(), scaled.parameters()):
        assert torch.allclose(a, b, rtol=0, atol=1e-6), name  # a power-of-two scale unscales exactly
    before = copy.deepcopy(scaled.state_dict())
    step(scaled, poison=True)
    assert all(torch.equal(p, before[n]) for n, p in scaled.state_dict().items())  # no group stepped
    assert scalers[id(scaled)].get_scale() == 2.0**11
    step(scaled)  # and the next finite step trains again
    assert not torch.equal(scaled.transformer.h[0].mlp.c_fc.weight, before["transformer.h.0.mlp.c_fc.weight"])


@pytest.mark.slow
def test_a_compiled_muon_run_routes_the_uncompiled_names_and_learns(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    s = tiny_settings(data_dir=char_dataset, out_dir=out, optimizer="muon", compile=True, max_iters=8, eval_interval=8)
    final = train.run(s)
    assert final["best_val_loss"] < math.log(62)  # it learned
    state = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["optimizer"]
    assert len(state["muon"]["state"]) == 2 * 4  # the block matrices found under the compiled wrapper


def test_a_muon_run_schedules_every_group_skips_a_nan_and_keeps_both_states(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    s = tiny_settings(
        data_dir=char_dataset,
        out_dir=out,
        optimizer="muon",
        tie_embeddings=False,
        head_lr=1e-3,
        inject_nan_at_iter=4,
        on_nonfinite="skip",
    )
    final = train.run(s)
    assert final["skipped"] == 1 and final["best_val_loss"] < math.log(62) - 0.2  # it learned
    state = torch.load(os.path.join(out, "ckpt.pt"), weights_only=True)["optimizer"]
    last_lr = get_lr(19, s)
    muon_group = state["muon"]["param_groups"][0]
    assert muon_group["lr"] == pytest.approx(last_lr * s.muon_lr / s.learning_rate)
    assert len(state["muon"]["state"]) == 2 * 4  # one momentum buffer per block matrix ...
    assert all(set(v) == {"momentum_buffer"} for v in state["muon"]["state"].values())
    assert all({"exp_avg", "exp_avg_sq"} <= set(v) for v in state["adamw"]["state"].values())  # ... two moments here
    head = [g for g in state["adamw"]["param_groups"] if g["lr_scale"] == pytest.approx(1e-3 / s.learning_rate)]
    assert len(head) == 1 and head[0]["lr"] == pytest.approx(last_lr * 1e-3 / s.learning_rate)


def test_resuming_adamw_state_into_muon_is_one_line(char_dataset, tmp_path):
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out, max_iters=2, eval_interval=2, eval_iters=1))
    with pytest.raises(ConfigError, match="AdamW's alone, not Muon's and AdamW's; resume with optimizer='adamw'"):
        train.run(tiny_settings(out_dir=out, init_from="resume", optimizer="muon"), {"optimizer": "muon"})


def test_memory_model_and_plan_differ_by_the_optimizer_state(capsys):
    config = GPTConfig()
    block_matrices = config.n_layer * (4 * 768 * 768 + 2 * 768 * 3072)
    assert memory.optimizer_state_bytes(config) - memory.optimizer_state_bytes(config, "muon") == (4 * block_matrices)
    reports = {}
    for optimizer in ("adamw", "muon"):
        code, stdout, stderr = cli(
            plan.main, ["--gpu", "h100", "--batch_size=8", "--json", f"--optimizer={optimizer}"], capsys
        )
        assert code == 0, stderr
        reports[optimizer] = json.loads(stdout)["memory"]
    adamw, muon = reports["adamw"], reports["muon"]
    assert adamw["optimizer"] - muon["optimizer"] == pytest.approx(4 * block_matrices / formatting.GIB, abs=2e-3)
    assert {k: v for k, v in adamw.items() if k != "optimizer"} == {k: v for k, v in muon.items() if k != "optimizer"}
