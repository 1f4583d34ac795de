"""
Several processes under torchrun, on PyTorch's own engines: DDP (every rank a full replica,
gradients averaged) or FSDP2 (`fully_shard`: parameters, gradients and optimizer state sharded
over the ranks). Which rank this is and its device, how the micro-steps are shared, the few
collectives the training loop needs, full state dicts for checkpoints, and teardown.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; without them this is one process and every
function here is a no-op. Batch convention (nanoGPT's): gradient_accumulation_steps is the global
number of micro-steps per optimizer step, divided among the ranks, so a config means the same
tokens per step on 1 or N GPUs.

Checkpoints hold full, unsharded state in one format whatever the parallelism and world size
(the model's state dict; the optimizer's with parameters numbered as in a single process), so a
run saved by N ranks resumes on M, with DDP or FSDP. Gathering it to rank 0 costs host memory
(16 bytes per parameter); torch.distributed.checkpoint's sharded files would not, a later step.
"""

import datetime
import os
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from fitgpt.errors import ConfigError, RunFailure, first_line


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    enabled: bool = False  # launched by torchrun (even with one process)
    parallelism: str = "ddp"

    @property
    def master(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.enabled and self.parallelism == "fsdp"


def from_environment(parallelism: str = "ddp") -> Distributed:
    if "RANK" not in os.environ:
        return Distributed(parallelism=parallelism)
    rank, local_rank, world = (int(os.environ[k]) for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE"))
    return Distributed(rank, local_rank, world, True, parallelism)


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


def join(dist: Distributed, device: str, backend: str, timeout_s: float = 600) -> str:
    """This process's device; under torchrun it joins the process group first. A collective that
    waits longer than timeout_s for a rank (one that died) fails instead of hanging."""
    if not dist.enabled:
        return device
    device = rank_device(device, dist.local_rank, torch.cuda.is_available())
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(
        backend=backend if device.startswith("cuda") else "gloo", timeout=datetime.timedelta(seconds=timeout_s)
    )
    return device


def wrap(
    model: torch.nn.Module,
    dist: Distributed,
    device: str,
    *,
    compile: bool,
    dtype: str,
    autocast: AbstractContextManager,
    compile_mode: str = "default",
) -> tuple[torch.nn.Module, AbstractContextManager]:
    """(the module the training loop calls, the context to run it in). One process: the model,
    compiled if asked. DDP: the compiled model, DDP-wrapped. FSDP2: each block compiled and
    sharded, then the root, in place; under bf16 FSDP's MixedPrecisionPolicy casts the parameters
    (and reduces gradients in fp32) instead of autocast. Make the optimizer after this: over the
    sharded parameters."""
    if dist.sharded:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        if dtype == "fp16":  # the settings refuse dtype='fp16' with FSDP; 'auto' picks it where bf16 is missing
            raise ConfigError(
                "dtype='auto' chose fp16 on this GPU (no bf16), and parallelism='fsdp' trains in bf16 or fp32 here; "
                "set dtype='fp32' or parallelism='ddp'"
            )
        policy = MixedPrecisionPolicy(
            param_dtype=torch.bfloat16 if dtype == "bf16" else None, reduce_dtype=torch.float32
        )
        for block in model.transformer.h:
            if compile:
                block.compile(mode=compile_options(compile_mode))
            fully_shard(block, mp_policy=policy)
        fully_shard(model, mp_policy=policy)
        return model, nullcontext()
    model = torch.compile(model, mode=compile_options(compile_mode)) if compile else model
    if not dist.enabled:
        return model, autocast
    device_ids = [torch.device(device).index] if device.startswith("cuda") else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=device_ids), autocast


def compile_options(compile_mode: str) -> str | None:
    """torch.compile's mode argument for the compile_mode setting."""
    return None if compile_mode == "default" else compile_mode


def collective(dist: Distributed, call):
    """Run a collective; a rank that died or hung becomes one line on the others."""
    try:
        return call()
    except (RuntimeError, torch.distributed.DistError) as e:
        raise RunFailure(
            f"rank {dist.rank}: lost contact with the other ranks ({first_line(e)}); one of them stopped: "
            "see its error above"
        ) from None


def sum_over_ranks(values: list[float], dist: Distributed, device: str) -> list[float]:
    """Each value summed over the ranks (every rank must call this)."""
    if not dist.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    collective(dist, lambda: torch.distributed.all_reduce(tensor))
    return tensor.tolist()


def gather_objects(obj: object, dist: Distributed) -> list:
    """obj of every rank, in rank order, on every rank (every rank must call this)."""
    if not dist.enabled:
        return [obj]
    objects = [None] * dist.world_size
    collective(dist, lambda: torch.distributed.all_gather_object(objects, obj))
    return objects


def any_rank(flag: bool, dist: Distributed, device: str) -> bool:
    """True on every rank when it is true on any: ranks must take such decisions together."""
    return sum_over_ranks([float(flag)], dist, device)[0] > 0


def optimizer_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The parameter names in the optimizer's numbering (its groups, in order), which is what a
    single process's optimizer.state_dict() keys its state by."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


def full_state(model: torch.nn.Module, optimizer: torch.optim.Optimizer, dist: Distributed) -> tuple[dict, dict]:
    """(model state dict, optimizer state dict), full and on the CPU on rank 0 under FSDP (every
    rank must call this), as they are otherwise."""
    if not dist.sharded:
        return model.state_dict(), optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state = collective(dist, lambda: get_model_state_dict(model, options=options))
    by_name = collective(dist, lambda: get_optimizer_state_dict(model, optimizer, options=options))
    index = {name: i for i, name in enumerate(optimizer_names(model, optimizer))}
    numbered = {
        "state": {index[name]: state for name, state in by_name.get("state", {}).items()},
        "param_groups": [
            {**g, "params": [index[name] for name in g["params"]]} for g in by_name.get("param_groups", [])
        ],
    }
    return model_state, numbered


def load_optimizer_state(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict, dist: Distributed
) -> None:
    """Load a full optimizer state dict (numbered as a single process numbers it) on any world size."""
    if not dist.sharded:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = optimizer_names(model, optimizer)
    by_name = {
        "state": {names[i]: s for i, s in state["state"].items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in state["param_groups"]],
    }
    options = StateDictOptions(full_state_dict=True)
    collective(dist, lambda: set_optimizer_state_dict(model, optimizer, by_name, options=options))


def sync_gradients(model: torch.nn.Module, dist: Distributed, sync: bool) -> None:
    """Whether the next backward reduces the gradients over the ranks (DDP's all-reduce, FSDP2's
    reduce-scatter): under gradient accumulation only the last micro-step's need to. One process:
    nothing to reduce."""
    if not dist.enabled:
        return
    if dist.sharded:
        model.set_requires_gradient_sync(sync)
    else:
        model.require_backward_grad_sync = sync


def local_norm(norm: torch.Tensor) -> torch.Tensor:
    """A gradient norm as a plain tensor (under FSDP clip_grad_norm_ returns a DTensor)."""
    return norm.full_tensor() if hasattr(norm, "full_tensor") else norm


def teardown(dist: Distributed) -> None:
    """Wait for every rank (rank 0 may still be writing a checkpoint), then leave the group."""
    if dist.enabled and torch.distributed.is_initialized():
        collective(dist, torch.distributed.barrier)
        torch.distributed.destroy_process_group()
