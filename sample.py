"""
Sample text from a trained checkpoint:
    python sample.py --out_dir=out-shakespeare-char
    python sample.py --out_dir=out --start="Once upon a time" --num_samples=3 --max_new_tokens=200
    python sample.py --start=FILE:prompt.txt --temperature=0.8 --top_k=200 --top_p=0.95
    python sample.py --init_from=stories15M.bin --tokenizer=tokenizer.model --start="Once upon a time"
    python sample.py --help
With a SentencePiece vocabulary the prompt starts with BOS, as every training document does (and as
llama2.c's run.c prompts do): --temperature=0 then gives run.c's -t 0 continuation token for token.
"""

# -----------------------------------------------------------------------------
# the settings' defaults, written only here (fitgpt/settings.py reads these lines); --key=value overrides them
out_dir = "out"  # folder holding ckpt.pt
init_from = ""  # a llama2.c .bin file (v0 or v1, e.g. stories15M.bin) to sample instead of ckpt.pt
tokenizer = ""  # with init_from: a SentencePiece .model file (llama2.c's tokenizer.model) or a dataset folder
start = "\n"  # prompt text, or FILE:path to read it from a file
num_samples = 3
max_new_tokens = 500
temperature = 0.8  # 1.0 samples the model's distribution, < 1 sharpens it, 0 is greedy
top_k = 200  # keep only the k most likely tokens; None keeps all
top_p = None  # keep the smallest set of tokens whose probability reaches top_p; None keeps all
stop_at_eot = False  # end a sample at the end-of-text token
kv_cache = True  # reuse past keys/values: each new token costs one position, not the whole context
seed = 1337
device = "auto"
dtype = "auto"
# -----------------------------------------------------------------------------
from fitgpt.errors import exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import os
import sys
import time

import torch

import configurator
from fitgpt.checkpoint import load_checkpoint, model_from_checkpoint, training_dataset
from fitgpt.errors import ConfigError
from fitgpt.fsutil import file_problem
from fitgpt.llama2c import load_llama2c
from fitgpt.runtime import setup_device
from fitgpt.settings import SampleSettings
from fitgpt.tokenization import Tokenizer, get_tokenizer, tokenizer_at
from model import GPT


def read_prompt(start: str) -> str:
    if start.startswith("FILE:"):
        path = start[len("FILE:") :]
        problem = file_problem(path)
        if problem:
            raise ConfigError(f"prompt file {path}: {problem}")
        with open(path, encoding="utf-8") as f:
            return f.read()
    return start


def load_model(s: SampleSettings) -> tuple[GPT, Tokenizer]:
    """The model to sample (out_dir's checkpoint, or the llama2.c file init_from) and its tokenizer."""
    if not s.init_from:
        path = os.path.join(s.out_dir, "ckpt.pt")
        checkpoint = load_checkpoint(path, map_location="cpu")
        data_dir, meta = training_dataset(checkpoint, path)
        # the training data's tokenizer; GPT-2 without a meta.json
        return model_from_checkpoint(checkpoint, path), get_tokenizer(meta, data_dir)
    model, tokenizer = load_llama2c(s.init_from), tokenizer_at(s.tokenizer)
    if tokenizer.vocab_size != model.config.vocab_size:
        raise ConfigError(
            f"tokenizer={s.tokenizer} has {tokenizer.vocab_size} tokens but {s.init_from} has "
            f"vocab_size={model.config.vocab_size}; pass the tokenizer the model was trained with"
        )
    return model, tokenizer


def run(s: SampleSettings) -> list[str]:
    """Print and return s.num_samples continuations of the prompt."""
    device_name, _, ctx = setup_device(s.device, s.dtype, seed=s.seed)
    model, tokenizer = load_model(s)
    model.eval().to(device_name)
    prompt = tokenizer.encode(read_prompt(s.start))
    if tokenizer.bos_id is not None:  # training documents start with BOS, so prompts do
        prompt = [tokenizer.bos_id, *prompt]
    if not prompt:
        raise ConfigError("the prompt is empty; pass --start=TEXT")
    idx = torch.tensor([prompt], dtype=torch.long, device=device_name)
    stop_token = tokenizer.eot_id if s.stop_at_eot else None
    with ctx:  # a GPU's first kernels load lazily (seconds); keep that out of the tokens/s figure
        model.generate(idx, 2, use_cache=s.kv_cache)
    texts = []
    for _ in range(s.num_samples):
        t0 = time.time()
        with ctx:
            out = model.generate(
                idx,
                s.max_new_tokens,
                temperature=s.temperature,
                top_k=s.top_k,
                top_p=s.top_p,
                stop_token=stop_token,
                use_cache=s.kv_cache,
            )
        new_tokens = out[0, len(prompt) :].tolist()
        if stop_token is not None and stop_token in new_tokens:
            new_tokens = new_tokens[: new_tokens.index(stop_token)]
        elapsed = time.time() - t0
        texts.append(tokenizer.decode(prompt + new_tokens))
        print(texts[-1])
        print(
            f"---------------- {out.size(1) - len(prompt)} tokens in {elapsed:.2f} s, "
            f"{(out.size(1) - len(prompt)) / elapsed:.1f} tokens/s",
            file=sys.stderr,
        )
    return texts


def main(argv: list[str]) -> list[str]:
    settings, given = configurator.parse(argv, SampleSettings, __doc__.strip())
    return run(settings)


if __name__ == "__main__":
    exit_on_error(main)
