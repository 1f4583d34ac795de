"""The layout's rules: imports point one way, the torch-free modules stay torch-free, the entry
points' plain globals are their settings' defaults, every flag is spelled with underscores, and
every entry point answers --help."""

import ast
import dataclasses
import glob
import os
import re
import subprocess
import sys

import pytest

import evaluate
import export
import sample
import train
from conftest import ROOT, cli, run_script
from fitgpt.settings import EvaluateSettings, ExportSettings, SampleSettings, TrainSettings

ENTRY_POINTS = {"train", "sample", "bench", "export", "plan", "plot", "sweep", "evaluate"}


def imported_modules(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module


def python_files():
    patterns = ("*.py", "fitgpt/*.py", "benchmarks/*.py", "data/*/*.py", "tests/*.py")
    return [p for pattern in patterns for p in glob.glob(os.path.join(ROOT, pattern))]


def test_no_module_imports_an_entry_point():
    offenders = []
    for path in python_files():
        name = os.path.splitext(os.path.basename(path))[0]
        if os.path.dirname(path).endswith("tests"):
            continue  # tests drive the entry points
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in ENTRY_POINTS and top != name:
                offenders.append(f"{os.path.relpath(path, ROOT)} imports {module}")
    assert offenders == []


def test_the_package_imports_only_the_ground_floor_from_the_root():
    """fitgpt/ may use model.py and configurator.py; model.py uses nothing but its config."""
    for path in glob.glob(os.path.join(ROOT, "fitgpt", "*.py")):
        root_modules = {m.split(".")[0] for m in imported_modules(path)} & {
            os.path.splitext(os.path.basename(p))[0] for p in glob.glob(os.path.join(ROOT, "*.py"))
        }
        assert root_modules <= {"model", "configurator"}, path
    assert {m for m in imported_modules(os.path.join(ROOT, "model.py")) if m.startswith("fitgpt")} == {
        "fitgpt.architecture"
    }


def test_torch_free_modules_load_without_torch():
    modules = (
        "fitgpt.flops, fitgpt.hardware, fitgpt.memory, fitgpt.planner, fitgpt.startup, fitgpt.settings, "
        "fitgpt.alarms, fitgpt.runlog, fitgpt.runfiles, fitgpt.wandb_run, fitgpt.formatting, fitgpt.runs, plot"
    )
    code = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


def test_every_flag_is_spelled_with_underscores():
    """One convention for every entry point: --key=value with the key spelled as a setting is."""
    hyphenated = re.compile(r"""add_argument\(\s*["']--[a-z0-9_]*-""")
    offenders = [path for path in python_files() if hyphenated.search(open(path, encoding="utf-8").read())]
    assert offenders == []


@pytest.mark.parametrize(
    "script, schema",
    [(train, TrainSettings), (sample, SampleSettings), (export, ExportSettings), (evaluate, EvaluateSettings)],
)
def test_entry_point_globals_are_the_settings_defaults(script, schema):
    """fitgpt/settings.py reads them from the file: what it read is what the script holds."""
    assert schema.defaults_problem is None
    for field in dataclasses.fields(schema):
        assert getattr(script, field.name) == field.default, f"{script.__name__}.{field.name}"


@pytest.mark.parametrize("script", [train, sample, export, evaluate])
def test_settings_help(script, capsys):
    code, stdout, _ = cli(script.main, ["--help"], capsys)
    assert code == 0 and "  --out_dir='out'  (str) " in stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "script",
    [
        "bench.py",
        "plot.py",
        "data/fineweb/prepare.py",
        "data/text/prepare.py",
        "data/tinystories/prepare.py",
        "data/shakespeare_char/prepare.py",
    ],
)
def test_every_script_answers_help(script):
    assert run_script(script, "--help").stdout.strip()
