"""
TinyStories (Eldan & Li, 2023) as token shards, with its official train/validation split.

    python data/tinystories/prepare.py                     # GPT-2 tokens, streamed from the Hub
    python data/tinystories/prepare.py --vocab_size 512    # llama2.c's own SentencePiece vocabulary
    python data/tinystories/prepare.py --tokenizer_model tokenizer.model   # Llama 2's (llama2.c ships it)
    python data/tinystories/prepare.py --local 'TinyStories_all_data/data*.json'   # offline

Sources: by default the Hub dataset roneneldan/TinyStories (splits train and validation),
streamed. --local reads files instead: the data*.json of llama2.c's TinyStories_all_data.tar.gz
(lists of {"story": ...}), or jsonl/parquet files with --text_field (the Hub's parquet files:
--text_field text). --local_val names the validation files; without it the first --local file
is the validation set, as llama2.c does with data00.json.

Each story is stripped of surrounding whitespace and preceded by a delimiter, as in llama2.c:
<|endoftext|> (50256) with GPT-2 tokens (the default), or BOS with a SentencePiece vocabulary:
--tokenizer_model PATH uses that model as it is (Llama 2's 32,000 pieces: the vocabulary
llama2.c's published val losses are measured on) and copies it beside the shards;
--vocab_size N first trains a BPE vocabulary of N pieces on the first --vocab_stories training
stories (llama2.c's train_vocab settings) and saves it as tok<N>.model beside the shards.
Writes tinystories_val_000000.bin, ... (all validation stories), then tinystories_train_<k>.bin,
... and meta.json in data/tinystories (or --out_dir), swapped in whole once complete. Rerunning
an interrupted run continues it.
Importable: prepare(...) does the same.
"""

import itertools
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
import configurator
from fitgpt import corpus, staging
from fitgpt.downloads import require_hub
from fitgpt.errors import ConfigError, DataError, exit_on_error

HUB = "roneneldan/TinyStories"
NAME = "tinystories"


def stories(files, text_field, split):
    """Stripped stories of local files, or of a split of the Hub dataset when files is None."""
    if files is None:
        require_hub(f"{HUB} ({split})", "offline, pass --local 'TinyStories_all_data/data*.json' (llama2.c's files)")
        from datasets import load_dataset

        docs = corpus.dataset_texts(load_dataset(HUB, split=split, streaming=True), "text", f"{HUB} ({split})")
    else:
        docs = corpus.iter_documents(files, text_field)
    return (story.strip() for story in docs)


def prepare(
    local=None,
    local_val=None,
    out_dir=HERE,
    vocab_size=None,
    vocab_stories=200_000,
    tokenizer_model=None,
    shard_tokens=100_000_000,
    num_proc=None,
    text_field="story",
):
    """Write val then train shards and meta.json; local, local_val: glob patterns of files to read
    instead of the Hub. Returns (shards, tokens)."""
    train_files = val_files = None
    if local_val and not local:
        raise ConfigError("--local_val needs --local (the training files)")
    if local:
        train_files = corpus.expand(local)
        val_files = corpus.expand(local_val) if local_val else train_files[:1]
        train_files = [f for f in train_files if f not in val_files]
        if not train_files:
            raise ConfigError(
                "--local: no training files left once the validation file is set aside; give more files or --local_val"
            )
    job = {  # what decides the dataset's bytes: the same job resumes, another replaces it
        "source": [staging.files_identity(f) for f in (train_files, val_files)] if local else HUB,
        "text_field": text_field if local else None,
        "vocab_size": vocab_size,
        "vocab_stories": vocab_stories,
        "tokenizer_model": corpus.tokenizer_model_identity(tokenizer_model),
        "shard_tokens": shard_tokens,
    }
    with staging.building(out_dir, job) as stage:
        model_file, meta = corpus.dataset_vocabulary(
            stage,
            tokenizer_model,
            vocab_size,
            lambda: itertools.islice(stories(train_files, text_field, "train"), vocab_stories),
        )
        common = dict(
            out_dir=stage, name=NAME, meta=meta, shard_tokens=shard_tokens, model_file=model_file, num_proc=num_proc
        )
        first_train, val_tokens = corpus.write_dataset(
            stories(val_files, text_field, "validation"), val_tokens=math.inf, desc="val", **common
        )
        shards, train_tokens = corpus.write_dataset(
            stories(train_files, text_field, "train"), first_index=first_train, desc="train", **common
        )
        for split, tokens in (("validation", val_tokens), ("training", train_tokens)):
            if tokens == 0:
                raise DataError(f"{out_dir}: the {split} stories held no text; nothing to train or evaluate on")
    return shards, val_tokens + train_tokens


def main(argv=None):
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--local", nargs="+", metavar="FILES", help="read these files (globs) instead of the Hub")
    parser.add_argument(
        "--local_val", nargs="+", metavar="FILES", help="validation files (default: the first --local file)"
    )
    parser.add_argument("--text_field", default="story", help="record field holding the story (--local)")
    corpus.add_vocabulary_arguments(parser, "the first --vocab_stories training stories")
    parser.add_argument("--vocab_stories", type=int, default=200_000, help="stories the vocabulary is learnt from")
    parser.add_argument("--out_dir", default=HERE)
    corpus.add_writer_arguments(parser, max_tokens=False)
    args = parser.parse_args(argv)
    shards, tokens = prepare(**vars(args))  # the options are named as prepare's parameters
    print(f"{tokens:,} tokens in {shards} shards in {args.out_dir}")


if __name__ == "__main__":
    exit_on_error(main)
