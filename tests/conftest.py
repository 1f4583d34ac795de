"""Shared test helpers: the tiny model and run settings, the shipped text fixture, datasets built
from it, the optional assets folder, and running a repo script in a fresh interpreter.

The suite needs nothing beside the repository. An assets folder (FITGPT_ASSETS, default
../shared beside the repo when it exists) only adds files that exist only online: tiktoken's
GPT-2 BPE files. Tests that need them skip, naming the file, unless FITGPT_REQUIRE_ASSETS=1
(this project's CI), under which a missing asset fails the test instead.
"""

import dataclasses
import importlib.util
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = os.path.join(ROOT, "tests", "data", "tinyshakespeare_200k.txt")  # public domain, from char-rnn's copy
ASSETS = os.environ.get("FITGPT_ASSETS", os.path.join(os.path.dirname(ROOT), "shared"))
REQUIRE_ASSETS = os.environ.get("FITGPT_REQUIRE_ASSETS", "") == "1"

# tiktoken fetches its GPT-2 files from the network unless this cache holds them
if "TIKTOKEN_CACHE_DIR" not in os.environ and os.path.isdir(os.path.join(ASSETS, "tiktoken_cache")):
    os.environ["TIKTOKEN_CACHE_DIR"] = os.path.join(ASSETS, "tiktoken_cache")

# the model and run the in-process training tests use: a few seconds per run on 2 cores
TINY_MODEL = dict(n_layer=2, n_head=2, n_embd=32, block_size=32)
TINY_RUN = dict(
    batch_size=8, gradient_accumulation_steps=2, max_iters=20, eval_interval=10, eval_iters=4, log_interval=5
)
TINY_OPTIMIZER = dict(learning_rate=3e-3, warmup_iters=5, lr_decay_iters=20, min_lr=3e-4)
TINY = {**TINY_MODEL, **TINY_RUN, **TINY_OPTIMIZER, "compile": False, "device": "cpu"}


def tiny_settings(**overrides):
    """TrainSettings for the tiny model (overrides win)."""
    from fitgpt.settings import TrainSettings

    return TrainSettings(**{**TINY, **overrides})


def as_args(settings) -> list[str]:
    """--key=value arguments for every setting that differs from the schema's default."""
    defaults = type(settings)()
    return [
        f"--{f.name}={getattr(settings, f.name)}"
        for f in dataclasses.fields(settings)
        if getattr(settings, f.name) != getattr(defaults, f.name)
    ]


def run_script(*args, check=True, timeout=300, env=None, cwd=ROOT):
    """Run a repo script in a fresh interpreter; returns the CompletedProcess (text output)."""
    result = subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


def load_script(dataset):
    """A data/<dataset>/prepare.py as a module (they are all named prepare)."""
    path = os.path.join(ROOT, "data", dataset, "prepare.py")
    spec = importlib.util.spec_from_file_location(f"prepare_{dataset}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def missing_asset(what: str):
    """Skip (or, with FITGPT_REQUIRE_ASSETS=1, fail) a test that needs an online-only file."""
    message = f"needs {what}; put it in {ASSETS} (FITGPT_ASSETS) or run with network access"
    if REQUIRE_ASSETS:
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def gpt2_encoding():
    """tiktoken's GPT-2 encoding; its files (vocab.bpe, encoder.json) come from TIKTOKEN_CACHE_DIR
    or the network."""
    import tiktoken

    try:
        return tiktoken.get_encoding("gpt2")
    except Exception as e:  # tiktoken raises requests', urllib's or its own errors
        missing_asset(f"tiktoken's GPT-2 BPE files vocab.bpe and encoder.json ({type(e).__name__})")


@pytest.fixture(scope="session")
def shakespeare_text():
    with open(TEXT, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="session")
def char_dataset(tmp_path_factory, shakespeare_text):
    """The shipped text, character-level, written by the real prepare script into a temp folder."""
    out = tmp_path_factory.mktemp("shakespeare_char")
    run_script("data/shakespeare_char/prepare.py", "--input", TEXT, "--out_dir", str(out))
    return str(out)


def cli(main, argv, capsys):
    """Run an entry point's main in-process as the shell would; returns (exit code, stdout, stderr)."""
    from fitgpt.errors import exit_on_error

    capsys.readouterr()  # what was printed before is not this call's
    code = 0
    try:
        exit_on_error(main, [str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr()
    return code, out.out, out.err
