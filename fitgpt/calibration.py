"""
A GPU's calibration, measured on it by bench.py --calibrate (or --suite): the MFU it reached by
model size and how far the memory model was from its peaks. plan.py (--calibration FILE, or
calibration/<gpu>.json for the GPU it plans on) and train.py's start-up plan use it in place of
the GPU table's MFU and the bare memory model, and say so. Torch-free: plan.py reads it.
"""

import json
import math
import os
from dataclasses import dataclass

from fitgpt.errors import ConfigError

FOLDER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "calibration")


@dataclass(frozen=True)
class Calibration:
    path: str
    device: str
    date: str
    points: tuple[tuple[float, float], ...]  # (parameters, achieved FLOP/s), by parameters
    allocated_factor: float | None  # measured over predicted peak, the largest seen (None: not measured)
    reserved_factor: float | None

    def achieved_flops(self, params: float) -> float:
        """FLOP/s a model of this size trains at: interpolated in log(parameters) between the
        measured sizes, the nearest one's outside them."""
        (p0, f0), (p1, f1) = self.points[0], self.points[-1]
        if params <= p0 or len(self.points) == 1:
            return f0
        if params >= p1:
            return f1
        for (a, fa), (b, fb) in zip(self.points, self.points[1:]):
            if a <= params <= b:
                return fa + (fb - fa) * math.log(params / a) / math.log(b / a)
        return f1

    @property
    def shown_path(self) -> str:
        """The file as a user would type it: relative to here when below here, else absolute."""
        relative = os.path.relpath(self.path)
        return os.path.abspath(self.path) if relative.startswith("..") else relative

    def source(self) -> str:
        return f"measured: {self.shown_path} ({self.device}, {self.date})"


def load(path: str) -> Calibration:
    """A calibration file, or a ConfigError naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        points = tuple(sorted((float(p["params"]), float(p["achieved_flops"])) for p in data["mfu_points"]))
        memory = data.get("memory") or {}
        if not points:
            raise ValueError("it holds no measured speed")
        return Calibration(
            path=path,
            device=data["device"],
            date=data.get("environment", {}).get("date", "undated"),
            points=points,
            allocated_factor=memory.get("allocated_factor"),
            reserved_factor=memory.get("reserved_factor"),
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ConfigError(f"calibration file {path}: not a bench.py --calibrate result ({e})") from None


def for_gpu(key: str | None, folder: str = FOLDER) -> Calibration | None:
    """The calibration measured on the GPU with this table key, if one was saved in folder."""
    path = os.path.join(folder, f"{key}.json") if key else ""
    return load(path) if path and os.path.exists(path) else None
