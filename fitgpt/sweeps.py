"""
The grid of a sweep (sweep.py): the runs a command line asks for, each one's folder name (from its
values alone, so the same command finds the same folders again), and how far each has come.
Reads config.json and metrics.jsonl only, without torch.
"""

import itertools
import os

from fitgpt.errors import ConfigError
from fitgpt.runfiles import METRICS_FILE, read_records, read_run_config


def split_arguments(argv: list[str]) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """(config files, {key: values} of every --key=a,b,c, the other --key=value arguments)."""
    configs, grid, fixed = [], {}, []
    for arg in argv:
        if not arg.startswith("--"):
            configs.append(arg)
        elif "=" in arg and "," in arg.split("=", 1)[1]:
            key, values = arg[2:].split("=", 1)
            grid[key] = [v.strip() for v in values.split(",")]
            if "" in grid[key]:
                raise ConfigError(f"argument '{arg}': an empty value between commas; remove the extra comma")
            if len(set(grid[key])) < 2:
                raise ConfigError(f"argument '{arg}': a swept setting needs two or more different values")
        else:
            fixed.append(arg)
    if not grid:
        raise ConfigError("nothing to sweep: give at least one setting several values, e.g. --learning_rate=3e-4,1e-3")
    return configs, grid, fixed


def combinations(grid: dict[str, list[str]]) -> list[dict[str, str]]:
    """Every combination of the values, the first key varying slowest."""
    return [dict(zip(grid, values)) for values in itertools.product(*grid.values())]


def run_name(values: dict[str, str]) -> str:
    """'learning_rate_1e-3__n_layer_4': a folder name that stays the same for the same values."""
    return "__".join(f"{key}_{value}".replace(os.sep, "-") for key, value in values.items())


def state(out_dir: str, settings: dict) -> str:
    """'new', 'partial' (started, not finished) or 'finished'. A folder whose run had other
    settings (config.json) is refused: its results would be taken for this grid's."""
    config = read_run_config(out_dir) if os.path.isdir(out_dir) else None
    if config is None:
        return "new"
    ignored = {"init_from"}  # a resumed run's config.json says 'resume'
    differ = sorted(
        key
        for key, value in config["settings"].items()
        if key in settings and key not in ignored and settings[key] != value
    )
    if differ:
        shown = ", ".join(f"{k}={config['settings'][k]!r} there, {settings[k]!r} now" for k in differ[:3])
        raise ConfigError(f"{out_dir} holds a run with other settings ({shown}); remove it or pass another --sweep_dir")
    metrics = os.path.join(out_dir, METRICS_FILE)
    records = read_records(metrics) if os.path.isfile(metrics) else []
    return "finished" if any(row.get("finished") for row in records) else "partial"
