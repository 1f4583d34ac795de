"""
TinyStories (Eldan & Li, 2023) as token shards, with its official train/validation split.

    python data/tinystories/prepare.py                     # GPT-2 tokens, streamed from the Hub
    python data/tinystories/prepare.py --vocab-size 512    # llama2.c's own SentencePiece vocabulary
    python data/tinystories/prepare.py --local 'TinyStories_all_data/data*.json'   # offline

Sources: by default the Hub dataset roneneldan/TinyStories (splits train and validation),
streamed. --local reads files instead: the data*.json of llama2.c's TinyStories_all_data.tar.gz
(lists of {"story": ...}), or jsonl/parquet files with --text-field (the Hub's parquet files:
--text-field text). --local-val names the validation files; without it the first --local file
is the validation set, as llama2.c does with data00.json.

Each story is stripped of surrounding whitespace and preceded by a delimiter, as in llama2.c:
<|endoftext|> (50256) with GPT-2 tokens (the default), or BOS with --vocab-size N, which first
trains a SentencePiece BPE vocabulary of N tokens on the first --vocab-stories training stories
(llama2.c's train_vocab settings) and saves it as tok<N>.model beside the shards.
Writes tinystories_val_000000.bin, ... (all validation stories), then tinystories_train_<k>.bin,
... and meta.json in data/tinystories (or --out_dir). Rerunning an interrupted run continues it.
Importable: prepare(...) does the same.
"""

import argparse
import itertools
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
from fitgpt.corpus import add_writer_arguments, dataset_texts, expand, iter_documents, write_dataset
from fitgpt.downloads import require_hub
from fitgpt.errors import ConfigError, DataError, exit_on_error
from fitgpt.tokenization import GPT2_META

HUB = "roneneldan/TinyStories"
NAME = "tinystories"


def stories(files, text_field, split):
    """Stripped stories of local files, or of a split of the Hub dataset when files is None."""
    if files is None:
        require_hub(f"{HUB} ({split})", "offline, pass --local 'TinyStories_all_data/data*.json' (llama2.c's files)")
        from datasets import load_dataset

        docs = dataset_texts(load_dataset(HUB, split=split, streaming=True), "text", f"{HUB} ({split})")
    else:
        docs = iter_documents(files, text_field)
    return (story.strip() for story in docs)


def train_vocab(texts, vocab_size, out_dir, num_texts):
    """Train a SentencePiece BPE vocabulary on the first num_texts texts with llama2.c's settings
    (and no whitespace collapsing, so text round-trips); returns the model path. An existing
    tok<N>.model is reused: shards already written depend on it."""
    import sentencepiece

    model = os.path.join(out_dir, f"tok{vocab_size}.model")
    if os.path.exists(model):
        return model
    tmp = os.path.join(out_dir, f"tok{vocab_size}.tmp")
    with open(tmp + ".txt", "w", encoding="utf-8") as f:
        for text in itertools.islice(texts, num_texts):
            f.write(text + "\n")
    try:
        sentencepiece.SentencePieceTrainer.train(
            input=tmp + ".txt",
            model_prefix=tmp,
            model_type="bpe",
            vocab_size=vocab_size,
            input_format="text",
            character_coverage=1.0,
            num_threads=os.cpu_count(),
            split_digits=True,
            allow_whitespace_only_pieces=True,
            byte_fallback=True,
            unk_surface=r" \342\201\207 ",
            normalization_rule_name="identity",
            remove_extra_whitespaces=False,
            minloglevel=2,
        )
        os.replace(tmp + ".vocab", model[: -len(".model")] + ".vocab")
        os.replace(tmp + ".model", model)  # last: the model exists only once complete
    finally:
        for leftover in (tmp + ".txt", tmp + ".model", tmp + ".vocab"):
            if os.path.exists(leftover):
                os.remove(leftover)
    return model


def prepare(
    local=None,
    local_val=None,
    out_dir=HERE,
    vocab_size=None,
    vocab_stories=200_000,
    shard_tokens=100_000_000,
    num_proc=None,
    text_field="story",
):
    """Write val then train shards and meta.json; local, local_val: glob patterns of files to read
    instead of the Hub. Returns (shards, tokens)."""
    train_files = val_files = None
    if local_val and not local:
        raise ConfigError("--local-val needs --local (the training files)")
    if local:
        train_files = expand(local)
        val_files = expand(local_val) if local_val else train_files[:1]
        train_files = [f for f in train_files if f not in val_files]
        if not train_files:
            raise ConfigError(
                "--local: no training files left once the validation file is set aside; give more files or --local-val"
            )
    model_file, meta = None, GPT2_META
    if vocab_size:
        os.makedirs(out_dir, exist_ok=True)
        model_file = train_vocab(stories(train_files, text_field, "train"), vocab_size, out_dir, vocab_stories)
        import sentencepiece

        bos = sentencepiece.SentencePieceProcessor(model_file=model_file).bos_id()
        meta = {
            "tokenizer": "sentencepiece",
            "model_file": os.path.basename(model_file),
            "vocab_size": vocab_size,
            "eot_id": bos,
        }  # the delimiter between stories: a sampler stops at it
    common = dict(
        out_dir=out_dir, name=NAME, meta=meta, shard_tokens=shard_tokens, model_file=model_file, num_proc=num_proc
    )
    first_train, val_tokens = write_dataset(
        stories(val_files, text_field, "validation"), val_tokens=math.inf, desc="val", **common
    )
    shards, train_tokens = write_dataset(
        stories(train_files, text_field, "train"), first_index=first_train, desc="train", **common
    )
    for split, tokens in (("validation", val_tokens), ("training", train_tokens)):
        if tokens == 0:
            raise DataError(f"{out_dir}: the {split} stories held no text; nothing to train or evaluate on")
    return shards, val_tokens + train_tokens


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--local", nargs="+", metavar="FILES", help="read these files (globs) instead of the Hub")
    parser.add_argument(
        "--local-val", nargs="+", metavar="FILES", help="validation files (default: the first --local file)"
    )
    parser.add_argument("--text-field", default="story", help="record field holding the story (--local)")
    parser.add_argument("--vocab-size", type=int, help="train a SentencePiece vocabulary of this size, not GPT-2's")
    parser.add_argument("--vocab-stories", type=int, default=200_000, help="stories the vocabulary is learnt from")
    parser.add_argument("--out_dir", default=HERE)
    add_writer_arguments(parser, max_tokens=False)
    args = parser.parse_args(argv)
    shards, tokens = prepare(**vars(args))  # the options are named as prepare's parameters
    print(f"{tokens:,} tokens in {shards} shards in {args.out_dir}")


if __name__ == "__main__":
    exit_on_error(main)
