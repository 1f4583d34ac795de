"""
One optimizer step and what surrounds it: the learning-rate schedule, AdamW's parameter groups,
gradient accumulation, evaluation, the guard against non-finite losses, and stop requests from
SIGTERM/Ctrl-C. train.py and bench.py share these, so bench.py times exactly what train.py runs.
"""

import math
import os
import signal
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from tqdm import tqdm

from fitgpt.distributed import Distributed, local_norm, sum_over_ranks
from fitgpt.errors import RunFailure
from fitgpt.runtime import peak_memory_gib
from fitgpt.settings import TrainSettings


def get_lr(
    it: int,
    learning_rate: float,
    warmup_iters: int,
    lr_decay_iters: int,
    min_lr: float,
    decay_lr: bool = True,
    schedule: str = "cosine",
    decay_frac: float = 0.2,
) -> float:
    """Linear warmup over warmup_iters, then down to min_lr at lr_decay_iters, then flat. cosine:
    half a cosine from the peak; linear: a straight line; wsd (warmup-stable-decay): the peak held
    until the last decay_frac of lr_decay_iters, then a straight line. Under wsd runs with other
    budgets share every learning rate before their decay, so one long run's checkpoint from the
    stable phase can be resumed with a shorter max_iters and lr_decay_iters: that branch is the
    shorter run (docs/evaluation.md)."""
    if not decay_lr:
        return learning_rate
    if it < warmup_iters:
        return learning_rate * (it + 1) / (warmup_iters + 1)
    if it >= lr_decay_iters:
        return min_lr
    start = warmup_iters
    if schedule == "wsd":
        start = max(warmup_iters, lr_decay_iters - round(decay_frac * lr_decay_iters))
        if it < start:
            return learning_rate
    progress = (it - start) / (lr_decay_iters - start)
    if schedule == "cosine":
        return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (learning_rate - min_lr)
    return learning_rate + progress * (min_lr - learning_rate)


def learning_rates(s: TrainSettings) -> Callable[[int], float]:
    """The learning rate at each iteration of a run with these settings."""
    return lambda it: get_lr(
        it, s.learning_rate, s.warmup_iters, s.lr_decay_iters, s.min_lr, s.decay_lr, s.lr_schedule, s.decay_frac
    )


def make_optimizer(
    model: torch.nn.Module, weight_decay: float, learning_rate: float, betas: tuple[float, float], device: str
) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (>= 2-D) only: not on biases, norms or gains."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]
    fused = device.startswith("cuda")  # the fused CUDA kernel avoids one launch per parameter
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=fused)


def forward_backward(
    model: torch.nn.Module,
    next_batch: Callable,
    micro_steps: int,
    ctx: AbstractContextManager,
    scaler: torch.amp.GradScaler,
    dist: Distributed | None = None,
    poison: bool = False,
) -> torch.Tensor:
    """Accumulate the gradients of the mean loss over micro_steps batches; returns the summed loss
    (a tensor, so nothing waits for the GPU). poison multiplies the loss by NaN (a testing hook)."""
    loss_sum = None
    for micro_step in range(micro_steps):
        x, y = next_batch()
        if dist is not None and dist.enabled:  # reduce gradients over the ranks on the last micro-step only
            last = micro_step == micro_steps - 1
            if dist.sharded:
                model.set_requires_gradient_sync(last)
            else:
                model.require_backward_grad_sync = last
        with ctx:
            loss = model(x, y)[1]  # not the logits: held through backward they cost 2 bytes x vocab per token
        if poison:
            loss = loss * float("nan")
        loss_sum = loss.detach() if loss_sum is None else loss_sum + loss.detach()
        # scaled so the summed gradients are those of the mean loss over all micro-steps
        scaler.scale(loss / micro_steps).backward()
    return loss_sum


@torch.no_grad()
def estimate_loss(
    model: torch.nn.Module, loaders: dict, eval_iters: int, ctx: AbstractContextManager, dist: Distributed, device: str
) -> dict:
    """Mean loss over the first eval_iters batches of each loader's stream, shared out over the
    ranks (rank r evaluates batches r, r+W, ...) and summed, so it is the same on any number of
    ranks; loaders restart from their seed, so every evaluation sees the same batches. Rank 0
    shows a progress bar on a terminal once a split takes more than 2 s."""
    was_training = model.training
    model.eval()
    sums = []
    # every rank runs the same number of forward passes (FSDP gathers weights in each, so a rank
    # with one fewer would wait in a different collective): a rank past eval_iters scores a spare
    # batch and drops it
    rounds = math.ceil(eval_iters / dist.world_size)
    for split, loader in loaders.items():
        loader.reset()
        total = 0.0
        quiet = None if dist.master else True  # None: quiet unless stderr is a terminal
        for i in tqdm(range(rounds), f"eval {split}", leave=False, unit="batch", delay=2, disable=quiet):
            x, y = loader.next_batch()
            with ctx:
                loss = model(x, y)[1].item()
            if dist.rank + i * dist.world_size < eval_iters:
                total += loss
        sums.append(total)
    model.train(was_training)
    return {split: total / eval_iters for split, total in zip(loaders, sum_over_ranks(sums, dist, device))}


def optimizer_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    grad_clip: float,
    guard: "NonFiniteGuard",
    iter_num: int,
    loss: float,
) -> float:
    """Unscale and clip the accumulated gradients, step unless the guard refuses (a non-finite loss
    or gradient), and clear them; returns the gradient norm before clipping."""
    scaler.unscale_(optimizer)
    grad_norm = local_norm(torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip or math.inf)).item()
    if guard.allows_step(iter_num, loss, grad_norm, scaler.is_enabled()):
        scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


class NonFiniteGuard:
    """Keeps a NaN/Inf loss or gradient norm from reaching the weights: policy 'stop' ends the run
    (the last checkpoint untouched), 'skip' drops the batch, up to max_in_a_row in a row."""

    def __init__(self, policy: str, max_in_a_row: int, out_dir: str, progress):
        self.policy, self.max_in_a_row, self.out_dir = policy, max_in_a_row, out_dir
        self.progress, self.in_a_row = progress, 0  # progress.skipped_batches counts the skipped batches

    def allows_step(self, iter_num: int, loss: float, grad_norm: float, scaled: bool) -> bool:
        """Whether to take this step. With an fp16 GradScaler (scaled) an Inf gradient is the
        scaler's to handle: it skips that step itself and lowers its scale."""
        if math.isfinite(loss) and (scaled or math.isfinite(grad_norm)):
            self.in_a_row = 0
            return True
        if self.policy == "stop":
            raise RunFailure(
                f"iteration {iter_num}: non-finite loss ({loss}) or gradient norm ({grad_norm}); "
                f"no step taken, last checkpoint in {self.out_dir} untouched. Lower learning_rate, "
                f"or set on_nonfinite='skip'"
            )
        self.progress.skipped_batches += 1
        self.in_a_row += 1
        print(
            f"iteration {iter_num}: non-finite loss or gradient, batch skipped ({self.in_a_row} in a row)", flush=True
        )
        if self.in_a_row >= self.max_in_a_row:
            raise RunFailure(
                f"{self.in_a_row} non-finite batches in a row (max_skipped_in_a_row="
                f"{self.max_in_a_row}); stopping. Lower learning_rate or check the data"
            )
        return False


@contextmanager
def out_of_memory_hint(
    batch_size: int, block_size: int, gradient_accumulation_steps: int, device: str
) -> Iterator[None]:
    """Turn an out-of-memory error inside into one line suggesting a smaller micro-batch."""
    try:
        yield
    except torch.OutOfMemoryError:
        message = out_of_memory_message(batch_size, block_size, gradient_accumulation_steps, peak_memory_gib(device))
        raise RunFailure(message) from None


def out_of_memory_message(
    batch_size: int, block_size: int, gradient_accumulation_steps: int, peak_gib: float | None
) -> str:
    if batch_size == 1:
        fix = "lower block_size, use a smaller model, or a GPU with more memory"
    else:
        fix = (
            f"try batch_size={batch_size // 2} with gradient_accumulation_steps="
            f"{gradient_accumulation_steps * 2} (the same tokens per step)"
        )
    peak = f" (peak {peak_gib:.1f} GiB allocated)" if peak_gib is not None else ""
    return f"out of memory with micro-batch batch_size={batch_size}, block_size={block_size}{peak}; {fix}"


class StopRequest:
    """SIGTERM/SIGINT ask the run to stop after the current iteration; a second SIGINT exits.
    Use as a context manager: the previous handlers come back afterwards (train.run in-process)."""

    def __init__(self):
        self.requested = None
        self.previous = {}

    def __enter__(self) -> "StopRequest":
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum, frame):
        if self.requested is not None and signum == signal.SIGINT:
            print("second interrupt: exiting now, without a checkpoint", flush=True)
            os._exit(130)
        self.requested = signal.Signals(signum).name
        print(f"{self.requested} received: finishing this iteration, then saving a checkpoint", flush=True)
