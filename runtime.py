"""
Device and precision setup, shared by train.py, sample.py and bench.py.
"""
from contextlib import nullcontext

import torch

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}

# Dense bf16 tensor-core peak (no sparsity), FLOP/s, used for MFU. Matched by substring of the
# device name; set peak_flops in the config for a GPU not listed.
PEAK_BF16_FLOPS = [
    ("MI300X", 1307.4e12),
    ("MI250X", 383e12),
    ("H200", 989e12),
    ("H100", 989e12),
    ("A100", 312e12),
    ("A10G", 70e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("RTX 4090", 165.2e12),  # GeForce: fp32 accumulation runs at half the fp16-accumulate rate
    ("RTX 4080", 97.5e12),
    ("RTX 4070", 58.3e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),
]


class SetupError(ValueError):
    """A device or dtype the machine cannot provide."""


def resolve_device(device="auto"):
    """'auto' -> cuda (NVIDIA or ROCm), then mps, then cpu; anything else is checked and returned."""
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = device.split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise SetupError(f"device={device!r} but no CUDA/ROCm GPU is visible; use device='auto' or 'cpu'")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise SetupError(f"device={device!r} but MPS is not available; use device='auto' or 'cpu'")
    if kind not in ("cuda", "mps", "cpu"):
        raise SetupError(f"unknown device {device!r}; use 'auto', 'cuda', 'cuda:N', 'mps' or 'cpu'")
    return device


def resolve_dtype(dtype, device):
    """'auto' -> bf16 on GPUs that support it, else fp16 (with a GradScaler); fp32 on CPU."""
    kind = device.split(":")[0]
    if dtype == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16" if kind == "mps" else "fp32"
    if dtype not in DTYPES:
        raise SetupError(f"unknown dtype {dtype!r}; use 'auto', 'bf16', 'fp16' or 'fp32'")
    if dtype == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise SetupError("dtype='bf16' is not supported by this GPU; use dtype='fp16' or 'auto'")
    if dtype == "fp16" and kind == "cpu":
        raise SetupError("dtype='fp16' is not supported for training on CPU; use dtype='fp32' or 'bf16'")
    return dtype


def setup_device(device="auto", dtype="auto", seed=None):
    """Resolve device and dtype, enable TF32, seed; returns (device, dtype_name, autocast context)."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if seed is not None:
        torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    kind = device.split(":")[0]
    if dtype == "fp32":
        ctx = nullcontext()
    else:
        ctx = torch.autocast(device_type=kind, dtype=DTYPES[dtype])
    return device, dtype, ctx


def peak_flops(device, override=0.0):
    """Peak bf16 FLOP/s of the device for MFU, or None when unknown (e.g. CPU)."""
    if override:
        return override
    if not str(device).startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(device)
    for key, flops in PEAK_BF16_FLOPS:
        if key in name:
            return flops
    return None
