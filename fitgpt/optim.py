"""
The optimizer of a run and its learning rate. optimizer='adamw': AdamW for every parameter, with
weight decay on the matrices only; 'muon': torch.optim.Muon for the 2-D weight matrices inside the
transformer blocks (attention and MLP projections) and AdamW for everything else (token and
position embeddings, the output layer, norms, biases), as nanochat and modded-nanogpt split them.
Muon orthogonalizes each matrix's momentum (Newton-Schulz), so those matrices need one fp32 buffer
each instead of AdamW's two. The schedule (warmup, then cosine, linear or warmup-stable-decay) sets
every group: each carries 'lr_scale', its peak learning rate over learning_rate, and set_lr puts
group['lr'] at get_lr(it, s) * group['lr_scale'].
"""

import math

import torch

from fitgpt.errors import ConfigError
from fitgpt.settings import TrainSettings


def get_lr(it: int, s: TrainSettings) -> float:
    """The learning rate at iteration it of a run with these settings: linear warmup over
    warmup_iters, then down to min_lr at lr_decay_iters, then flat. lr_schedule 'cosine': half a
    cosine from the peak; 'linear': a straight line; 'wsd' (warmup-stable-decay): the peak held
    until the last decay_frac of lr_decay_iters, then a straight line. Under wsd runs with other
    budgets share every learning rate before their decay, so one long run's checkpoint from the
    stable phase can be resumed with a shorter max_iters and lr_decay_iters: that branch is the
    shorter run (docs/evaluation.md). decay_lr=False keeps learning_rate throughout."""
    learning_rate, warmup_iters, lr_decay_iters, min_lr = s.learning_rate, s.warmup_iters, s.lr_decay_iters, s.min_lr
    if not s.decay_lr:
        return learning_rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    start = warmup_iters
    if s.lr_schedule == "wsd":
        start = max(warmup_iters, lr_decay_iters - round(s.decay_frac * lr_decay_iters))
        if it < start:
            return learning_rate
    progress = (it - start) / (lr_decay_iters - start)
    if s.lr_schedule == "cosine":
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)
    return learning_rate + progress * (min_lr - learning_rate)


def set_lr(optimizer: "torch.optim.Optimizer | MuonAdamW", lr: float) -> None:
    """Put every group at the schedule's lr times its own lr_scale."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group["lr_scale"]


def build_optimizer(model: torch.nn.Module, s: TrainSettings, device: str) -> "torch.optim.AdamW | MuonAdamW":
    """The optimizer s.optimizer names, over the model's (possibly FSDP-sharded) parameters; the
    settings refuse Muon with FSDP."""
    betas = (s.beta1, s.beta2)
    fused = device.startswith("cuda")  # AdamW's fused CUDA kernel avoids one launch per parameter
    if s.optimizer == "adamw":
        return torch.optim.AdamW(adamw_groups(model, s.weight_decay), lr=s.learning_rate, betas=betas, fused=fused)
    matrices, rest = muon_param_groups(model, s)
    muon = torch.optim.Muon(matrices, lr=s.muon_lr)
    return MuonAdamW(muon, torch.optim.AdamW(rest, lr=s.learning_rate, betas=betas, fused=fused))


def adamw_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW's groups when it trains every parameter: weight decay on matrices (>= 2-D) only, not on
    biases, norms or gains; both at the schedule's lr."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay, "lr_scale": 1.0},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0, "lr_scale": 1.0},
    ]


def is_block_matrix(name: str, param: torch.Tensor) -> bool:
    """Whether Muon updates this parameter: a 2-D weight inside a transformer block."""
    return param.dim() == 2 and name.startswith("transformer.h.")


def muon_param_groups(model: torch.nn.Module, s: TrainSettings) -> tuple[list[dict], list[dict]]:
    """(Muon's groups, AdamW's groups): every trainable parameter in exactly one, empty groups left out.
    A tied output layer is the token embedding, so it takes embedding_lr."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]  # a tied weight comes once
    base = s.learning_rate or 1.0  # learning_rate 0 trains nothing whatever the scales are
    embedding_lr = s.learning_rate if s.embedding_lr is None else s.embedding_lr
    head_lr = s.learning_rate if s.head_lr is None else s.head_lr
    matrices = [p for n, p in named if is_block_matrix(n, p)]
    embeddings = [p for n, p in named if n.startswith(("transformer.wte.", "transformer.wpe."))]
    head = [p for n, p in named if n.startswith("lm_head.")]
    taken = {id(p) for p in matrices + embeddings + head}
    rest = [p for _, p in named if id(p) not in taken]  # norms' gains, biases: all 1-D here
    muon = [
        {
            "params": matrices,
            "lr": s.muon_lr,
            "lr_scale": s.muon_lr / base,
            "momentum": s.muon_momentum,
            "weight_decay": s.muon_weight_decay,
        }
    ]
    adamw = [
        {"params": embeddings, "lr": embedding_lr, "lr_scale": embedding_lr / base, "weight_decay": s.weight_decay},
        {"params": head, "lr": head_lr, "lr_scale": head_lr / base, "weight_decay": s.weight_decay},
        {"params": rest, "lr": s.learning_rate, "lr_scale": s.learning_rate / base, "weight_decay": 0.0},
    ]
    return [g for g in muon if g["params"]], [g for g in adamw if g["params"]]


class MuonAdamW:
    """torch.optim.Muon and torch.optim.AdamW stepped as one optimizer: param_groups lists both's
    groups (Muon's first), so a GradScaler unscales, and the schedule sets, every group; the state
    dict holds both optimizers' states."""

    def __init__(self, muon: torch.optim.Muon, adamw: torch.optim.AdamW):
        self.muon, self.adamw = muon, adamw

    @property
    def param_groups(self) -> list[dict]:
        return self.muon.param_groups + self.adamw.param_groups

    def step(self) -> None:
        self.muon.step()
        self.adamw.step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.muon.zero_grad(set_to_none=set_to_none)
        self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        if set(state) != {"muon", "adamw"}:
            raise ConfigError(
                "the checkpoint's optimizer state is AdamW's alone, not Muon's and AdamW's; resume with "
                "optimizer='adamw', or start a new run with optimizer='muon'"
            )
        self.muon.load_state_dict(state["muon"])
        self.adamw.load_state_dict(state["adamw"])
