"""
Several processes under torchrun (PyTorch DDP): which rank this is, which device it uses, how the
micro-steps are shared, the few collectives the training loop needs, and teardown.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is one process and every
function here is a no-op. Batch convention (nanoGPT's): gradient_accumulation_steps is the global
number of micro-steps per optimizer step, divided among the ranks, so a config means the same
tokens per step on 1 or N GPUs.
"""

import os
from dataclasses import dataclass

import torch

from fitgpt.errors import ConfigError


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False  # launched by torchrun (even with one process)

    @property
    def master(self) -> bool:
        return self.rank == 0


def from_environment() -> Distributed:
    if "RANK" not in os.environ:
        return Distributed()
    return Distributed(int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), int(os.environ["WORLD_SIZE"]), True)


def rank_device(device: str, local_rank: int, cuda_available: bool) -> str:
    """The device of the rank with this LOCAL_RANK: 'auto' and 'cuda' mean cuda:LOCAL_RANK when a
    GPU is visible (one GPU per process on a node); an explicit 'cuda:N', 'cpu' or 'mps' is kept."""
    if device in ("auto", "cuda") and cuda_available:
        return f"cuda:{local_rank}"
    return device


def micro_steps_per_rank(gradient_accumulation_steps: int, world_size: int) -> int:
    if gradient_accumulation_steps % world_size:
        raise ConfigError(
            f"gradient_accumulation_steps ({gradient_accumulation_steps}) must be divisible by the world size "
            f"({world_size}); each rank runs an equal share of the micro-steps"
        )
    return gradient_accumulation_steps // world_size


def join(dist: Distributed, device: str, backend: str) -> str:
    """This process's device; under torchrun it joins the process group first."""
    if not dist.enabled:
        return device
    device = rank_device(device, dist.local_rank, torch.cuda.is_available())
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(backend=backend if device.startswith("cuda") else "gloo")
    return device


def wrap(model: torch.nn.Module, dist: Distributed, device: str) -> torch.nn.Module:
    """The model DDP-wrapped under torchrun (gradients averaged over ranks), else as it is."""
    if not dist.enabled:
        return model
    device_ids = [torch.device(device).index] if device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids)


def mean_over_ranks(values: dict[str, float], dist: Distributed, device: str) -> dict[str, float]:
    """Each value averaged over the ranks (every rank must call this)."""
    if not dist.enabled:
        return values
    tensor = torch.tensor(list(values.values()), dtype=torch.float64, device=device)
    torch.distributed.all_reduce(tensor)
    return {key: v / dist.world_size for key, v in zip(values, tensor.tolist())}


def any_rank(flag: bool, dist: Distributed, device: str) -> bool:
    """True on every rank when it is true on any: ranks must take such decisions together."""
    if not dist.enabled:
        return flag
    tensor = torch.tensor(float(flag), device=device)
    torch.distributed.all_reduce(tensor)
    return tensor.item() > 0


def gather(obj: object, dist: Distributed) -> list:
    """obj of every rank, in rank order (every rank must call this)."""
    if not dist.enabled:
        return [obj]
    objects = [None] * dist.world_size
    torch.distributed.all_gather_object(objects, obj)
    return objects


def teardown(dist: Distributed) -> None:
    """Wait for every rank (rank 0 may still be writing a checkpoint), then leave the group."""
    if dist.enabled and torch.distributed.is_initialized():
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
