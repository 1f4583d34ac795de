"""
What train.py's loop calls beside the step it shows: the loss on fixed batches of each split,
averaged over the ranks (evaluation); the verdict on a non-finite loss or gradient (skip the batch,
or stop); and an out-of-memory error turned into one line that says how to re-batch. bench.py's
step uses the last two as well.
"""

import math
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import torch
from tqdm import tqdm

from fitgpt.distributed import Distributed, sum_over_ranks
from fitgpt.errors import RunFailure
from fitgpt.memory import rebatch
from fitgpt.runtime import peak_memory_gib
from fitgpt.settings import TrainSettings


@torch.no_grad()
def estimate_loss(
    model: torch.nn.Module,
    loaders: dict,
    eval_iters: int,
    ctx: AbstractContextManager,
    *,
    dist: Distributed,
    device: str,
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


def skip_nonfinite(
    s: TrainSettings, iter_num: int, loss: float, grad_norm: float, *, scaled: bool, in_a_row: int
) -> bool:
    """Whether to skip this step's update: a NaN/Inf loss or gradient norm must not reach the
    weights. on_nonfinite='stop' ends the run instead (the last checkpoint untouched); 'skip' drops
    the batch, up to max_skipped_in_a_row batches in a row (in_a_row: those skipped just before).
    With an fp16 GradScaler (scaled) an Inf gradient is the scaler's to handle: it skips that step
    itself and lowers its scale."""
    if math.isfinite(loss) and (scaled or math.isfinite(grad_norm)):
        return False
    if s.on_nonfinite == "stop":
        raise RunFailure(
            f"iteration {iter_num}: non-finite loss ({loss}) or gradient norm ({grad_norm}); "
            f"no step taken, last checkpoint in {s.out_dir} untouched. Lower learning_rate, "
            f"or set on_nonfinite='skip'"
        )
    print(f"iteration {iter_num}: non-finite loss or gradient, batch skipped ({in_a_row + 1} in a row)", flush=True)
    if in_a_row + 1 >= s.max_skipped_in_a_row:
        raise RunFailure(
            f"{in_a_row + 1} non-finite batches in a row (max_skipped_in_a_row="
            f"{s.max_skipped_in_a_row}); stopping. Lower learning_rate or check the data"
        )
    return True


@contextmanager
def out_of_memory_hint(s: TrainSettings, device: str) -> Iterator[None]:
    """Turn an out-of-memory error inside into one line suggesting a smaller micro-batch."""
    try:
        yield
    except torch.OutOfMemoryError:
        message = out_of_memory_message(
            s.batch_size, s.block_size, s.gradient_accumulation_steps, peak_memory_gib(device)
        )
        raise RunFailure(message) from None


def out_of_memory_message(
    batch_size: int, block_size: int, gradient_accumulation_steps: int, peak_gib: float | None
) -> str:
    if batch_size == 1:
        fix = "lower block_size, use a smaller model, or a GPU with more memory"
    else:
        micro, accumulation = rebatch(batch_size, gradient_accumulation_steps, batch_size // 2)
        fix = f"try batch_size={micro} with gradient_accumulation_steps={accumulation} (the same tokens per step)"
    peak = f" (peak {peak_gib:.1f} GiB allocated)" if peak_gib is not None else ""
    return f"out of memory with micro-batch batch_size={batch_size}, block_size={block_size}{peak}; {fix}"
