"""
The GPUs: each one's datasheet peaks and memory, the MFU expected of it (measured or an assumption
named as one), and a device as a plan sees it (memory, peak FLOP/s, MFU and the calibration
measured on it, bench.py --calibrate). Torch-free: plan.py reads it.
"""

import re
from dataclasses import dataclass, field, replace

from fitgpt.calibration import Calibration, for_gpu
from fitgpt.calibration import load as load_calibration
from fitgpt.errors import ConfigError
from fitgpt.formatting import GIB


def matmul_precision(dtype: str, device: str) -> str:
    """The precision a training dtype's matmuls run in: fp32 runs them as TF32 on a GPU (runtime.py
    enables it), as true fp32 on a CPU."""
    return "tf32" if dtype == "fp32" and device.startswith("cuda") else dtype


# -----------------------------------------------------------------------------
# GPUs. Dense (no sparsity) datasheet peaks in TFLOP/s by precision; bf16/fp16 are with fp32
# accumulation, which is what PyTorch uses (GeForce cards run that at half their fp16-accumulate
# rate). memory_gib is the capacity torch reports as total memory.

# The model FLOPs utilisation plan.py and train.py expect of each GPU family (of the bf16 peak):
# measured where fitgpt has measured it, otherwise an assumption that names its source. Every
# answer that uses an assumed figure says so; plan.py --mfu overrides it.
MFU_BY_FAMILY = {
    "h100": (0.40, "measured: fitgpt on one H100 SXM, GPT-2 124M to 1.5B compiled, 39-43 % (docs/benchmarks.md)"),
    "hopper": (0.40, "assumed: the H100 SXM's measured 40 % (the same Hopper chip), not measured on this one"),
    "blackwell": (0.40, "assumed: fitgpt's H100 figure; not measured on Blackwell"),
    "a100": (
        0.30,
        "assumed: nanoGPT's GPT-2 124M, 300B tokens in about 4 days on 8 A100s, is about 30 % of 312 TFLOP/s",
    ),
    "ada": (
        0.40,
        "assumed for Ada GPUs: a nanoGPT user's GPT-2 124M ran at about 90 TFLOP/s on one RTX 4090 "
        "(55 % of its 165), taken lower",
    ),
    "ampere": (0.30, "assumed: as nanoGPT's A100 run (about 30 %); not measured on this card"),
    "cdna": (0.16, "assumed: a 2024 ROCm report put compiled GPT-2 XL training on one MI300X at about 16 % of peak"),
}


@dataclass(frozen=True)
class GPU:
    key: str  # the name plan.py --gpu takes
    name: str
    pattern: str  # regex matched against torch.cuda.get_device_name()
    memory_gib: float
    tflops: dict[str, float] = field(default_factory=dict)  # precision -> dense peak TFLOP/s
    family: str = "hopper"  # its MFU_BY_FAMILY entry

    def peak_flops(self, precision: str = "bf16") -> float | None:
        tflops = self.tflops.get(precision)
        return tflops * 1e12 if tflops else None

    @property
    def mfu(self) -> tuple[float, str]:
        """(the MFU expected of this GPU, where that figure comes from: 'measured: ...' or 'assumed: ...')."""
        return MFU_BY_FAMILY[self.family]


def _hopper(bf16: float, fp32: float) -> dict[str, float]:
    return {"bf16": bf16, "fp16": bf16, "tf32": bf16 / 2, "fp32": fp32, "fp8": 2 * bf16}


GPUS = [
    GPU("h100", "H100 SXM 80GB", r"H100 80GB HBM3|H100 SXM", 79.2, _hopper(989.4, 66.9), "h100"),
    GPU("h100-pcie", "H100 PCIe 80GB", r"H100 PCIe", 79.2, _hopper(756.0, 51.2)),
    GPU("h100-nvl", "H100 NVL 94GB", r"H100 NVL", 93.0, _hopper(835.5, 60.0)),
    GPU("h200", "H200 SXM 141GB", r"\bH200\b(?! NVL)", 139.8, _hopper(989.4, 66.9)),
    GPU("h200-nvl", "H200 NVL 141GB", r"H200 NVL", 139.8, _hopper(835.5, 60.0)),
    GPU("gh200", "GH200 96GB", r"GH200", 94.5, _hopper(989.4, 66.9)),
    GPU(
        "b200",
        "B200 180GB",
        r"\bB200\b",
        178.4,
        {"bf16": 2250, "fp16": 2250, "tf32": 1100, "fp32": 75, "fp8": 4500},
        "blackwell",
    ),
    GPU("a100-80", "A100 80GB", r"A100.*80GB", 79.2, {"bf16": 312, "fp16": 312, "tf32": 156, "fp32": 19.5}, "a100"),
    GPU("a100-40", "A100 40GB", r"A100(?!.*80GB)", 39.4, {"bf16": 312, "fp16": 312, "tf32": 156, "fp32": 19.5}, "a100"),
    GPU(
        "l40s",
        "L40S 48GB",
        r"L40S",
        44.4,
        {"bf16": 362.05, "fp16": 362.05, "tf32": 183.2, "fp32": 91.6, "fp8": 733},
        "ada",
    ),
    GPU("l4", "L4 24GB", r"\bL4\b", 22.0, {"bf16": 121, "fp16": 121, "tf32": 60, "fp32": 30.3, "fp8": 242.5}, "ada"),
    GPU(
        "a6000",
        "RTX A6000 48GB",
        r"RTX A6000",
        47.5,
        {"bf16": 154.8, "fp16": 154.8, "tf32": 77.4, "fp32": 38.7},
        "ampere",
    ),
    GPU(
        "rtx5090",
        "GeForce RTX 5090 32GB",
        r"RTX 5090$",
        31.4,
        {"bf16": 209.5, "fp16": 209.5, "tf32": 104.8, "fp32": 104.8, "fp8": 419},
        "blackwell",
    ),
    GPU(
        "rtx4090",
        "GeForce RTX 4090 24GB",
        r"RTX 4090$",
        23.6,
        {"bf16": 165.2, "fp16": 165.2, "tf32": 82.6, "fp32": 82.6, "fp8": 330.3},
        "ada",
    ),
    GPU(
        "rtx4080",
        "GeForce RTX 4080 16GB",
        r"RTX 4080$",
        15.6,
        {"bf16": 97.5, "fp16": 97.5, "tf32": 48.7, "fp32": 48.7, "fp8": 194.9},
        "ada",
    ),
    GPU(
        "rtx4070",
        "GeForce RTX 4070 12GB",
        r"RTX 4070$",
        11.6,
        {"bf16": 58.3, "fp16": 58.3, "tf32": 29.1, "fp32": 29.1, "fp8": 116.6},
        "ada",
    ),
    GPU(
        "rtx3090",
        "GeForce RTX 3090 24GB",
        r"RTX 3090$",
        23.6,
        {"bf16": 71, "fp16": 71, "tf32": 35.6, "fp32": 35.6},
        "ampere",
    ),
    GPU(
        "mi300x",
        "Instinct MI300X 192GB",
        r"MI300X",
        191.5,
        {"bf16": 1307.4, "fp16": 1307.4, "tf32": 653.7, "fp32": 163.4, "fp8": 2614.9},
        "cdna",
    ),
    GPU(
        "mi325x",
        "Instinct MI325X 256GB",
        r"MI325X",
        255.5,
        {"bf16": 1307.4, "fp16": 1307.4, "tf32": 653.7, "fp32": 163.4, "fp8": 2614.9},
        "cdna",
    ),
    # torch sees each MI250X as two devices (one per die): figures are per die
    GPU(
        "mi250x",
        "Instinct MI250X (one of its two dies, 64GB)",
        r"MI250X",
        63.9,
        {"bf16": 191.5, "fp16": 191.5, "fp32": 47.9},
        "cdna",
    ),
]


def gpu_by_key(key: str) -> GPU | None:
    """The table entry plan.py's --gpu names (case-insensitive), or None."""
    key = key.lower()
    return next((g for g in GPUS if g.key == key), None)


def gpu_for_device_name(name: str) -> GPU | None:
    """The table entry for a name as torch reports it (e.g. 'NVIDIA H100 PCIe'), or None when the
    device is not listed: a near-miss (an H100 PCIe matched as an SXM) would misstate MFU by 30 %."""
    for gpu in GPUS:
        if re.search(gpu.pattern, name):
            return gpu
    return None


def peak_flops(device_name: str, precision: str = "bf16", override: float = 0.0) -> float | None:
    """Dense peak FLOP/s of a device for MFU: the override when set, else the table's, else None."""
    if override:
        return override
    gpu = gpu_for_device_name(device_name)
    return gpu.peak_flops(precision) if gpu else None


# -----------------------------------------------------------------------------
# A device as a plan sees it.

# a GPU plan.py's table does not list (--vram_gb and --peak_tflops): the H100's measured figure
UNKNOWN_GPU_MFU = (0.40, "assumed: fitgpt's measured H100 figure; not measured on this GPU")


@dataclass(frozen=True)
class Device:
    name: str
    memory_gib: float
    peak_flops: float  # dense bf16, FLOP/s
    mfu: tuple[float, str] = UNKNOWN_GPU_MFU  # GPU.mfu: (figure, its source)
    calibration: Calibration | None = None  # measured on this GPU: its MFU by size and memory factors

    def peaks(self, estimate) -> tuple[float, float]:
        """(allocated, reserved) peak bytes of a step on this device: the memory model's estimate
        (a memory.MemoryEstimate), scaled by the calibration's measured factors when there is one."""
        cal = self.calibration
        allocated = estimate.total * (cal.allocated_factor or 1.0 if cal else 1.0)
        return allocated, estimate.reserved * (cal.reserved_factor or 1.0 if cal else 1.0)


def device_for(
    gpu: str | None, vram_gb: float | None = None, peak_tflops: float | None = None, calibration: str | None = None
) -> Device:
    """A GPU of the table (plan.py --gpu), or one described by --vram_gb (decimal GB, as datasheets
    print it) and --peak_tflops; with the calibration file given, or else the one saved for that
    GPU in calibration/ (bench.py --calibrate)."""
    device = table_device(gpu, vram_gb, peak_tflops)
    measured = load_calibration(calibration) if calibration else for_gpu(gpu.lower() if gpu else None)
    return replace(device, calibration=measured)


def table_device(gpu: str | None, vram_gb: float | None, peak_tflops: float | None) -> Device:
    memory = vram_gb * 1e9 / GIB if vram_gb else None
    if gpu:
        entry = gpu_by_key(gpu)
        if entry is None:
            names = ", ".join(g.key for g in GPUS)
            raise ConfigError(f"unknown --gpu {gpu!r}; use one of {names}, or --vram_gb and --peak_tflops")
        peak = (peak_tflops or entry.tflops["bf16"]) * 1e12
        name = entry.name + (f" with {vram_gb:g} GB ({memory:.1f} GiB)" if memory else "")
        return Device(name, memory or entry.memory_gib, peak, entry.mfu)
    if not (vram_gb and peak_tflops):
        raise ConfigError("name a GPU with --gpu (e.g. h100, mi300x, rtx4090) or give --vram_gb and --peak_tflops")
    return Device(f"a {vram_gb:g} GB ({memory:.1f} GiB) GPU at {peak_tflops:g} TFLOP/s", memory, peak_tflops * 1e12)


def device_named(name: str) -> Device:
    """The device torch reports by this name (train.py), with the table's MFU when it is listed
    and the calibration measured on it when one was saved."""
    gpu = gpu_for_device_name(name)
    if gpu is None:
        return Device(name, 0.0, 0.0)
    return Device(name, gpu.memory_gib, gpu.peak_flops() or 0.0, gpu.mfu, for_gpu(gpu.key))


def mfu_for(device: Device, params: float, override: float | None = None) -> tuple[float, str]:
    """The MFU to expect training a model of `params` parameters on this device, and where that
    figure comes from: the override (plan.py --mfu), else the GPU table's, measured or assumed.
    Every MFU plan.py and train.py use comes from here, so a calibration measured on the user's own
    GPU, by model size, plugs in at this one place."""
    if override:
        return override, "set with --mfu"
    if device.calibration and device.peak_flops:
        return device.calibration.achieved_flops(params) / device.peak_flops, device.calibration.source()
    return device.mfu
