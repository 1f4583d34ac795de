"""
Score a trained model on HellaSwag's 10,042 validation items (acc and acc_norm, with standard errors):
    python evaluate.py --out_dir=out-fineweb                   # ckpt.pt; the result goes to its metrics.jsonl
    python evaluate.py --out_dir=out-fineweb --limit=1000      # the first 1,000 items only
    python evaluate.py --init_from=gpt2                        # OpenAI's GPT-2 124M, the mark to beat (~0.29)
    torchrun --standalone --nproc_per_node=8 evaluate.py --out_dir=out-fineweb   # items shared over GPUs
The items are downloaded once to data/hellaswag/; offline, pass --hellaswag_file=PATH to a copy of
hellaswag_val.jsonl. During training, train.py's hellaswag_interval runs the same scorer.
For lm-evaluation-harness on an exported model, see docs/evaluation.md.
"""

# -----------------------------------------------------------------------------
# the settings' defaults, written only here (fitgpt/settings.py reads these lines); --key=value overrides them
out_dir = "out"  # folder holding ckpt.pt; the result is added to its metrics.jsonl
init_from = ""  # empty: out_dir's checkpoint; or 'gpt2' ... 'gpt2-xl' or a local Hugging Face folder
task = "hellaswag"
limit = 0  # score only the first N items; 0: all
hellaswag_file = ""  # a local hellaswag_val.jsonl; empty: data/hellaswag/'s, downloaded once
batch_items = 8  # items per forward pass (4 rows each)
device = "auto"
dtype = "auto"
backend = "nccl"  # torch.distributed backend under torchrun on GPUs
# -----------------------------------------------------------------------------
from fitgpt.errors import exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import os

import configurator
from fitgpt import distributed, hellaswag
from fitgpt.checkpoint import load_checkpoint, model_from_checkpoint
from fitgpt.formatting import hellaswag_line
from fitgpt.runfiles import METRICS_FILE, append_record, hellaswag_fields
from fitgpt.runtime import setup_device
from fitgpt.settings import EvaluateSettings
from fitgpt.shards import dataset_meta
from fitgpt.tokenization import GPT2_META, get_tokenizer


def run(s: EvaluateSettings) -> dict:
    """Score the model s names; returns the result (items, acc, acc_norm and their standard errors)."""
    dist = distributed.from_environment()
    device = distributed.join(dist, s.device, s.backend)
    device, _, ctx = setup_device(device, s.dtype)
    items = hellaswag.read_items(hellaswag.locate(s.hellaswag_file))
    items = items[: s.limit] if s.limit else items
    progress = None
    if s.init_from:
        from fitgpt.hf import load_hf  # needs transformers

        model, tokenizer = load_hf(s.init_from)[0], get_tokenizer(GPT2_META)
    else:
        checkpoint = load_checkpoint(os.path.join(s.out_dir, "ckpt.pt"))
        data_dir, meta = dataset_meta(checkpoint.get("config", {}))
        model, tokenizer = model_from_checkpoint(checkpoint), get_tokenizer(meta, data_dir)
        progress = {"iter": checkpoint.get("iter_num", 0), "tokens": checkpoint.get("tokens_seen", 0)}
    encoded = hellaswag.encode_items(items, tokenizer)
    result = hellaswag.evaluate(model.to(device), encoded, ctx, device, dist=dist, batch_items=s.batch_items)
    if dist.master:
        print(hellaswag_line(result))
        if progress is not None:  # beside the run's losses, where plot.py reads it
            append_record(os.path.join(s.out_dir, METRICS_FILE), {**progress, **hellaswag_fields(result)})
    distributed.teardown(dist)
    return result


def main(argv: list[str]) -> dict:
    settings, _ = configurator.parse(argv, EvaluateSettings, __doc__.strip())
    return run(settings)


if __name__ == "__main__":
    exit_on_error(main)
