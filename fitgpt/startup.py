"""
train.py's start-up plan: the lines it prints before the model moves to the device (the data it
will read, the model's size, its predicted peak memory and hours), its refusal of a run whose
predicted peak will not fit the device's free memory (with the settings that would), and the plan
checked against what the run measured once it ran a few steps. Torch-free: its figures are the
memory model's (memory.py), the GPU table's (hardware.py) and flops.py's, as plan.py's are.
"""

import math
from dataclasses import replace

from fitgpt import flops, hardware, memory
from fitgpt.architecture import GPTConfig
from fitgpt.formatting import GIB


def data_line(data_dir: str, split_tokens: tuple[int, int], tokens_per_iter: int, max_iters: int) -> str:
    """The data line printed at start: the splits (train and val tokens), and the tokens and epochs
    the run will read (the epochs_planned alarm says when that is too many)."""
    (train_tokens, val_tokens), total = split_tokens, tokens_per_iter * max_iters
    return (
        f"data: {data_dir}: {train_tokens:,} train / {val_tokens:,} val tokens; {tokens_per_iter:,} tokens per "
        f"iteration x {max_iters:,} iterations = {total:,} tokens = {total / train_tokens:.2f} epochs"
    )


def startup_summary(
    config: GPTConfig,
    settings,
    *,
    dtype: str,
    world_size: int,
    peak_flops: float | None,
    free_bytes: float | None,
    device_name: str = "",
) -> tuple[list[str], str | None]:
    """What train.py prints before it allocates the model on the device (settings: its
    TrainSettings; device_name: as torch reports it), and, when the predicted reserved peak exceeds
    the device's free memory and settings.memory_check is 'refuse', the one-line refusal with the
    fix ('warn': the same as a warning line; 'off': neither)."""
    s, params = settings, flops.param_count(config)
    device = hardware.device_named(device_name)
    allocated, reserved = device.peaks(memory.run_memory(config, s, dtype, world_size))
    tokens = s.batch_size * config.block_size * s.gradient_accumulation_steps * s.max_iters
    line = (
        f"plan: {params:,} parameters, {flops.flops_per_token(config) / 1e6:,.1f} MFLOPs per token; "
        f"{tokens:,} tokens = {tokens / params:.1f} per parameter; predicted GPU peak {allocated / GIB:.2f} GiB "
        f"allocated, {reserved / GIB:.2f} GiB reserved"
    )
    if free_bytes is not None:
        line += f" ({free_bytes / GIB:.1f} GiB free)"
    if device.calibration:
        line += f"; memory scaled by {device.calibration.shown_path}"
    if peak_flops:
        mfu, source = hardware.mfu_for(device, params)
        rate = (
            mfu
            * peak_flops
            / flops.flops_per_token(config)
            / flops.recompute_factor(config, s.activation_checkpointing)
        )
        cal = device.calibration
        where = f"measured on this GPU: {cal.shown_path}" if cal else source.split(":")[0]
        line += f"; about {tokens / rate / world_size / 3600:,.1f} h at {100 * mfu:.0f}% MFU ({where})"
    if free_bytes is None or reserved <= free_bytes or s.memory_check == "off":
        return [line], None
    message = (
        f"predicted peak memory {reserved / GIB:.1f} GiB reserved ({allocated / GIB:.1f} GiB allocated) exceeds the "
        f"{free_bytes / GIB:.1f} GiB free on the device at batch_size={s.batch_size}; "
        + memory_fix(config, memory.Step.of(s, dtype, world_size), s, free_bytes)
    )
    if s.memory_check == "warn":
        return [line, f"WARNING: {message}; starting anyway (memory_check='warn')"], None
    return [line], message + "; or memory_check='warn' to start it anyway"


def memory_fix(config: GPTConfig, step: memory.Step, settings, free_bytes: float) -> str:
    """What would fit free_bytes: a smaller power-of-two micro-batch with the same tokens per step,
    activation checkpointing, or a smaller model."""
    free_device = hardware.Device("this GPU", free_bytes / GIB + memory.CONTEXT_RESERVE / GIB, 0.0)
    fit = memory.max_micro_batch(config, free_device, step)
    if fit:
        micro, accumulation = memory.rebatch(
            settings.batch_size, settings.gradient_accumulation_steps, 2 ** int(math.log2(fit))
        )
        return f"use batch_size={micro} with gradient_accumulation_steps={accumulation} (the same tokens per step)" + (
            "" if step.activation_checkpointing else ", or activation_checkpointing=1"
        )
    if not step.activation_checkpointing and memory.max_micro_batch(
        config, free_device, replace(step, activation_checkpointing=1)
    ):
        return "set activation_checkpointing=1 with a smaller batch_size"
    return "the model does not fit this GPU even at batch_size=1: choose a smaller one (python plan.py)"


MEMORY_TOLERANCE = 0.10  # a measured peak further than this from the plan's is worth a warning


def plan_check(
    config: GPTConfig,
    settings,
    *,
    iter_num: int,
    dtype: str,
    world_size: int,
    device_name: str,
    measured: tuple[float, float] | None,
    measured_mfu: float | None,
) -> dict:
    """The run's plan (what startup_summary predicted) against what it measured once it ran a few
    steps: allocated and reserved peaks in GiB (None on a CPU, which has no allocator to read) and MFU."""
    device = hardware.device_named(device_name)
    allocated, reserved = device.peaks(memory.run_memory(config, settings, dtype, world_size))
    check = {
        "iter": iter_num,
        "predicted_allocated_gib": round(allocated / GIB, 3),
        "predicted_reserved_gib": round(reserved / GIB, 3),
        "measured_allocated_gib": None,
        "measured_reserved_gib": None,
        "planned_mfu": round(hardware.mfu_for(device, flops.param_count(config))[0], 4) if device.peak_flops else None,
        "measured_mfu": measured_mfu,
    }
    if measured is not None:
        check["measured_allocated_gib"] = round(measured[0] / GIB, 3)
        check["measured_reserved_gib"] = round(measured[1] / GIB, 3)
    return check


def plan_check_lines(check: dict) -> tuple[str, str | None]:
    """The line train.py prints once, and a warning when a measured peak is more than
    MEMORY_TOLERANCE from its prediction (or None)."""
    if check["measured_mfu"] is None:
        line = f"plan check at iteration {check['iter']}: MFU not known (the device's peak FLOP/s is not)"
    else:
        planned = f"{100 * check['planned_mfu']:.0f}% planned" if check["planned_mfu"] else "none planned"
        line = f"plan check at iteration {check['iter']}: MFU {100 * check['measured_mfu']:.1f}% measured ({planned})"
    if check["measured_allocated_gib"] is None:
        return line + "; memory is not measured on this device (no GPU allocator to read)", None
    off = []
    for kind in ("allocated", "reserved"):
        measured, predicted = check[f"measured_{kind}_gib"], check[f"predicted_{kind}_gib"]
        line += f"; peak {kind} {measured:.2f} GiB measured, {predicted:.2f} predicted"
        if abs(predicted - measured) > MEMORY_TOLERANCE * measured:
            off.append(f"{kind} {100 * (predicted - measured) / measured:+.0f}%")
    warning = None
    if off:
        warning = (
            f"the memory model is off for this run ({', '.join(off)} against the measured peak); plan.py's "
            "figures for it will be off by as much: python bench.py --calibrate measures this GPU"
        )
    return line, warning
