"""
Device and precision: which device a run uses, its dtype, the autocast context, what the device
is called (for the GPU table in hardware.py), its free and peak memory, and float8 training
through torchao.
"""

from contextlib import AbstractContextManager, nullcontext

import torch

from fitgpt.errors import SetupError
from fitgpt.formatting import GIB

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(device: str = "auto") -> str:
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
    return device


def resolve_dtype(dtype: str, device: str) -> str:
    """'auto' -> bf16 on GPUs that support it, else fp16 (with a GradScaler); fp32 on CPU."""
    kind = device.split(":")[0]
    if dtype == "auto":
        if kind == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "fp16" if kind == "mps" else "fp32"
    if dtype == "bf16" and kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise SetupError("dtype='bf16' is not supported by this GPU; use dtype='fp16' or 'auto'")
    if dtype == "fp16" and kind == "cpu":
        raise SetupError("dtype='fp16' is not supported for training on CPU; use dtype='fp32' or 'bf16'")
    return dtype


def setup_device(
    device: str = "auto", dtype: str = "auto", seed: int | None = None
) -> tuple[str, str, AbstractContextManager]:
    """Resolve device and dtype, enable TF32, seed; returns (device, dtype_name, autocast context)."""
    device = resolve_device(device)
    dtype = resolve_dtype(dtype, device)
    if seed is not None:
        torch.manual_seed(seed)
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    kind = device.split(":")[0]
    ctx = nullcontext() if dtype == "fp32" else torch.autocast(device_type=kind, dtype=DTYPES[dtype])
    return device, dtype, ctx


def device_name(device: str) -> str:
    """The device's name as torch reports it ('NVIDIA H100 80GB HBM3', 'AMD Instinct MI300X'), or its kind."""
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(device)
    return device.split(":")[0]


def attention_backend(device: str, dtype: str, head_dim: int) -> str:
    """The kernel SDPA will pick for the model's causal attention on this device (flash,
    efficient, cudnn, math), asked of the dispatcher with a one-token query; 'unknown' if it
    cannot say."""
    try:
        q = torch.zeros(1, 1, 1, head_dim, device=device, dtype=DTYPES[dtype])
        choice = torch._fused_sdp_choice(q, q, q, is_causal=True)  # private, but the dispatcher's own answer
        return torch.nn.attention.SDPBackend(choice).name.lower()
    except Exception:  # an older or newer torch without it: say so rather than guess
        return "unknown"


def device_line(device: str, dtype: str, head_dim: int) -> str:
    """The start-up line naming the device: on a GPU its name, ROCm's HIP version where it is AMD's,
    and SDPA's attention kernel, since on ROCm both decide what runs (docs/rocm.md)."""
    if not device.startswith("cuda"):
        return f"device {device}, {dtype}"
    platform = f"ROCm (HIP {torch.version.hip})" if torch.version.hip else f"CUDA {torch.version.cuda}"
    backend = attention_backend(device, dtype, head_dim)
    line = f"device {device} ({device_name(device)}, {platform}), {dtype}; attention: SDPA {backend}"
    if torch.version.hip:
        try:
            line += f" (ROCm flash-attention library: {torch.backends.cuda.preferred_rocm_fa_library()})"
        except (AttributeError, RuntimeError):  # a torch before it could be chosen
            pass
    return line


def synchronize(device: str) -> None:
    """Wait for the device's queued work (a no-op off CUDA), so timings measure the work itself."""
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def free_memory(device: str) -> float | None:
    """Bytes free on a CUDA device now, or None elsewhere."""
    if device.startswith("cuda"):
        return float(torch.cuda.mem_get_info(device)[0])
    return None


def peak_memory(device: str) -> tuple[float, float] | None:
    """(allocated, reserved) peak bytes on a CUDA device since the process started (or the last
    reset), or None elsewhere: a CPU has no allocator statistics to read."""
    if device.startswith("cuda"):
        return float(torch.cuda.max_memory_allocated(device)), float(torch.cuda.max_memory_reserved(device))
    return None


def peak_memory_gib(device: str) -> float | None:
    """Peak memory allocated by tensors on a CUDA device since the last reset, or None elsewhere."""
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated(device) / GIB
    return None


def float8_refusal(device: str, capability: tuple[int, int] | None = None, rocm: bool = False) -> str | None:
    """Why float8 training cannot run on this device (capability: a CUDA GPU's), or None."""
    kind = device.split(":")[0]
    if kind == "cpu":
        return None  # emulated, slowly: for tests of the numerics
    if kind != "cuda":
        return f"float8=True needs an NVIDIA GPU with fp8 matmuls; this device is {device}; set float8=False"
    if rocm:
        return "float8=True is not supported on ROCm GPUs by fitgpt yet (untested there); set float8=False"
    if capability < (8, 9):
        return (
            f"float8=True needs fp8 matmuls (compute capability 8.9 or newer: H100, H200, RTX 4090, L40S), this GPU "
            f"has {capability[0]}.{capability[1]}; set float8=False"
        )
    return None


def convert_to_float8(model: torch.nn.Module, recipe: str, device: str) -> int:
    """Swap the transformer blocks' Linear layers for torchao's float8 training ones (dynamic
    scaling, tensorwise or rowwise); the embedding and output layer stay in bf16, as torchtitan
    keeps them. Returns how many layers were swapped. Call before torch.compile."""
    cuda = device.startswith("cuda")
    capability = torch.cuda.get_device_capability(device) if cuda else None
    refusal = float8_refusal(device, capability, rocm=cuda and torch.version.hip is not None)
    if refusal:
        raise SetupError(refusal)
    try:
        from torchao.float8 import Float8LinearConfig, convert_to_float8_training
    except ImportError:
        raise SetupError("float8=True needs torchao: pip install torchao") from None

    def in_a_block(module: torch.nn.Module, name: str) -> bool:  # fp8 matmuls need dimensions divisible by 16
        linear = isinstance(module, torch.nn.Linear) and name.startswith("transformer.h.")
        return linear and module.in_features % 16 == 0 and module.out_features % 16 == 0

    convert_to_float8_training(model, config=Float8LinearConfig.from_recipe_name(recipe), module_filter_fn=in_a_block)
    return sum(type(m).__name__ == "Float8Linear" for m in model.modules())
