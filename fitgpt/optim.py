"""
The optimizer of a run: optimizer='adamw' (every parameter in AdamW, training.make_optimizer) or
'muon': torch.optim.Muon for the 2-D weight matrices inside the transformer blocks (attention and
MLP projections) and AdamW for everything else (token and position embeddings, the output layer,
norms, biases), as nanochat and modded-nanogpt split them. Muon orthogonalizes each matrix's
momentum (Newton-Schulz), so those matrices need one fp32 buffer each instead of AdamW's two.

Each parameter group carries 'lr_scale', its peak learning rate over learning_rate, so the one
schedule (train.py) scales every group: set_lr puts group['lr'] at schedule(it) * group['lr_scale'].
"""

import torch

from fitgpt.errors import ConfigError
from fitgpt.settings import TrainSettings
from fitgpt.training import make_optimizer


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


def set_lr(optimizer: torch.optim.Optimizer | MuonAdamW, lr: float) -> None:
    """Put every group at the schedule's lr times its own lr_scale (1 for plain AdamW's groups and
    checkpoints from before lr_scale)."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def build_optimizer(model: torch.nn.Module, s: TrainSettings, device: str) -> torch.optim.AdamW | MuonAdamW:
    """The optimizer s.optimizer names, over the model's (possibly FSDP-sharded) parameters; the
    settings refuse Muon with FSDP."""
    betas = (s.beta1, s.beta2)
    if s.optimizer == "adamw":
        return make_optimizer(model, s.weight_decay, s.learning_rate, betas, device)
    muon_groups, adamw_groups = muon_param_groups(model, s)
    muon = torch.optim.Muon(muon_groups, lr=s.muon_lr)
    fused = device.startswith("cuda")  # the fused CUDA kernel avoids one launch per parameter
    return MuonAdamW(muon, torch.optim.AdamW(adamw_groups, lr=s.learning_rate, betas=betas, fused=fused))
