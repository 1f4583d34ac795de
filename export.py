"""
Export a checkpoint as a Hugging Face model folder (config.json + model.safetensors):
    python export.py --out_dir=out-shakespeare-char --hf_dir=hf-shakespeare-char
Then, in any transformers program:
    AutoModelForCausalLM.from_pretrained("hf-shakespeare-char")
GPT-2-style models become GPT2LMHeadModel, Llama-style ones (rope, rmsnorm, swiglu) LlamaForCausalLM.
The dataset's meta.json (and SentencePiece model) is copied beside the weights so the folder says
which tokenizer the model reads.
"""
import os
import shutil
import sys

# -----------------------------------------------------------------------------
out_dir = "out"  # folder holding ckpt.pt
hf_dir = ""  # where to write the Hugging Face folder; empty means out_dir/hf
# -----------------------------------------------------------------------------
import configurator  # noqa: E402

SETTINGS = configurator.setting_names(globals())

from checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint  # noqa: E402
from hf import export_hf  # noqa: E402
from loader import dataset_meta  # noqa: E402
from shards import ShardError  # noqa: E402


def main():
    path = os.path.join(out_dir, "ckpt.pt")
    checkpoint = load_checkpoint(path)
    model = model_from_checkpoint(checkpoint, path)
    # the tokenizer is the training dataset's (GPT-2 BPE when it has no meta.json), as in sample.py
    config = checkpoint.get("config", {})
    data_dir, meta = dataset_meta(config)
    kind = (meta or {}).get("tokenizer", "gpt2")
    eos = 50256 if kind == "gpt2" and model.config.vocab_size > 50256 else None  # GPT-2's <|endoftext|>
    target = hf_dir or os.path.join(out_dir, "hf")
    arch = export_hf(model, target, eos_token_id=eos)
    if meta is not None:
        shutil.copy(os.path.join(data_dir, "meta.json"), target)
        if kind == "sentencepiece":
            shutil.copy(os.path.join(data_dir, meta["model_file"]), target)
    print(f"wrote {arch} ({model.num_params():,} parameters) to {target}")
    if kind == "gpt2":
        print("tokenizer: GPT-2 BPE, i.e. AutoTokenizer.from_pretrained('gpt2') or tiktoken 'gpt2'")
    else:
        print(f"tokenizer: {kind} (not a transformers tokenizer); its meta.json is copied into {target}")


if __name__ == "__main__":
    try:
        configurator.apply(globals(), sys.argv[1:], SETTINGS)
        main()
    except (configurator.ConfigError, CheckpointError, ShardError, ValueError, OSError) as e:
        sys.exit(f"error: {e}")
