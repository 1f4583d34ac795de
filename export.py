"""
Export a checkpoint as a Hugging Face model folder (config.json + model.safetensors):
    python export.py --out_dir=out-shakespeare-char --hf_dir=hf-shakespeare-char
Then, in any transformers program:
    AutoModelForCausalLM.from_pretrained("hf-shakespeare-char")
GPT-2-style models become GPT2LMHeadModel, Llama-style ones (rope, rmsnorm, swiglu) LlamaForCausalLM.
The dataset's meta.json (and SentencePiece model) is copied beside the weights so the folder says
which tokenizer the model reads.

Or as llama2.c's model.bin and tokenizer.bin, for its C program run.c (a Llama-style model without
biases or qk_norm, trained on a SentencePiece vocabulary):
    python export.py --out_dir=out-tinystories --llama2c=out-tinystories/model.bin
    ./run out-tinystories/model.bin -z out-tinystories/tokenizer.bin
"""

# -----------------------------------------------------------------------------
# the settings' defaults, written only here (fitgpt/settings.py reads these lines); --key=value overrides them
out_dir = "out"  # folder holding ckpt.pt
hf_dir = ""  # where to write the Hugging Face folder; empty means out_dir/hf
llama2c = ""  # write llama2.c's model.bin here (v0, what run.c reads) and tokenizer.bin beside it, not a HF folder
overwrite = False  # replace the files of an earlier export there (otherwise a non-empty hf_dir is refused)
# -----------------------------------------------------------------------------
from fitgpt.errors import ConfigError, exit_at_once_on_signals, exit_on_error

if __name__ == "__main__":
    exit_at_once_on_signals()  # Ctrl-C or SIGTERM during the slow imports below: one line, no traceback

import os
import shutil

import configurator
from fitgpt import flops
from fitgpt.checkpoint import load_checkpoint, model_from_checkpoint, training_dataset
from fitgpt.hf import export_hf
from fitgpt.llama2c import export_llama2c
from fitgpt.settings import ExportSettings
from fitgpt.tokenization import GPT2_EOT, tokenizer_kind


def check_target(s: ExportSettings) -> str:
    """The folder (hf_dir) or file (llama2c) to write, refused before anything is read when it is
    of the wrong kind, or holds files (an earlier export, or anything else) and not overwrite."""
    if s.llama2c:
        tokenizer_bin = os.path.join(os.path.dirname(s.llama2c), "tokenizer.bin")
        if os.path.isdir(s.llama2c):
            raise ConfigError(f"llama2c={s.llama2c} is a directory; name the model.bin file to write")
        existing = [p for p in (s.llama2c, tokenizer_bin) if os.path.exists(p)]
        if existing and not s.overwrite:
            raise ConfigError(
                f"llama2c={s.llama2c}: {' and '.join(existing)} already there; pass --overwrite=True to replace "
                f"{'them' if len(existing) > 1 else 'it'}, or choose another path"
            )
        return s.llama2c
    target = s.hf_dir or os.path.join(s.out_dir, "hf")
    named = f"hf_dir={target}" if s.hf_dir else f"{target} (hf_dir's default, out_dir/hf)"
    if os.path.exists(target) and not os.path.isdir(target):
        raise ConfigError(f"{named} is a file, not a folder; name a folder for the Hugging Face model")
    names = sorted(os.listdir(target)) if os.path.isdir(target) else []
    if names and not s.overwrite:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise ConfigError(
            f"{named} is not empty ({shown}); choose a new folder, or pass --overwrite=True to replace an earlier "
            f"export's files there"
        )
    return target


def run(s: ExportSettings) -> str:
    """Write the Hugging Face folder, or llama2.c's model.bin; returns its path."""
    target = check_target(s)
    path = os.path.join(s.out_dir, "ckpt.pt")
    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint, path)
    # the tokenizer is the training dataset's (GPT-2 BPE when it has no meta.json), as in sample.py
    data_dir, meta = training_dataset(checkpoint, path)
    if s.llama2c:
        header, tokenizer_bin = export_llama2c(model, meta, data_dir, s.llama2c)
        print(f"wrote {s.llama2c} (llama2.c v0, {header.describe()}, {os.path.getsize(s.llama2c):,} bytes)")
        print(f"wrote {tokenizer_bin} ({header.vocab_size} pieces); run: ./run {s.llama2c} -z {tokenizer_bin}")
        return s.llama2c
    kind = tokenizer_kind(meta)
    eos = GPT2_EOT if kind == "gpt2" and model.config.vocab_size > GPT2_EOT else None
    arch = export_hf(model, target, eos_token_id=eos)
    if meta is not None:
        shutil.copy(os.path.join(data_dir, "meta.json"), target)
        if kind == "sentencepiece":
            shutil.copy(os.path.join(data_dir, meta["model_file"]), target)
    print(f"wrote {arch} ({flops.param_count(model.config):,} parameters) to {target}")
    if kind == "gpt2":
        print("tokenizer: GPT-2 BPE, i.e. AutoTokenizer.from_pretrained('gpt2') or tiktoken 'gpt2'")
    else:
        print(f"tokenizer: {kind} (not a transformers tokenizer); its meta.json is copied into {target}")
    return target


def main(argv: list[str]) -> str:
    settings, _ = configurator.parse(argv, ExportSettings, __doc__.strip())
    return run(settings)


if __name__ == "__main__":
    exit_on_error(main)
