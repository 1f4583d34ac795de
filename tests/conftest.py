import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
SHAKESPEARE = os.path.join(SHARED, "data", "tinyshakespeare.txt")

# tiktoken fetches its GPT-2 files from the network unless this cache holds them
if "TIKTOKEN_CACHE_DIR" not in os.environ and os.path.isdir(os.path.join(SHARED, "tiktoken_cache")):
    os.environ["TIKTOKEN_CACHE_DIR"] = os.path.join(SHARED, "tiktoken_cache")


def run_script(*args, check=True, timeout=300, env=None, cwd=ROOT):
    """Run a repo script in a fresh interpreter; returns the CompletedProcess (text output)."""
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{args} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def shakespeare_text():
    if not os.path.exists(SHAKESPEARE):
        pytest.fail(f"{SHAKESPEARE} is missing: the tests need ../shared beside the repo")
    with open(SHAKESPEARE, encoding="utf-8") as f:
        return f.read()


@pytest.fixture(scope="session")
def char_dataset(tmp_path_factory):
    """tiny shakespeare, character-level, prepared by the real script into a temp folder."""
    out = tmp_path_factory.mktemp("shakespeare_char")
    run_script("data/shakespeare_char/prepare.py", "--input", SHAKESPEARE, "--out_dir", str(out))
    return str(out)
