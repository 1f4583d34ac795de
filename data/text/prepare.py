"""
Your own text as token shards: local .txt, .jsonl/.json and .parquet files.

    python data/text/prepare.py --input 'books/*.txt' --name books
    python data/text/prepare.py --input corpus.jsonl --text_field content --val_tokens 500000
    python data/text/prepare.py --input 'books/*.txt' --name books --vocab_size 4096
    python data/text/prepare.py --input 'books/*.txt' --name books --tokenizer_model tokenizer.model

A .txt file is one document (so one worker tokenizes it: split a big corpus into files, or use
jsonl/parquet with one record per document); jsonl/json/parquet give one document per record.
The vocabulary is GPT-2's BPE by default; --tokenizer_model PATH uses that SentencePiece model
as it is (e.g. Llama 2's tokenizer.model) and --vocab_size N trains a SentencePiece BPE
vocabulary of N pieces on the first --vocab_chars characters of the documents (llama2.c's
settings, saved as tok<N>.model); either model file is kept beside the shards.
Documents are read in the order given (globs sorted), each preceded by <|endoftext|> (50256),
or by BOS with a SentencePiece vocabulary (as llama2.c's shards are).
The first --val_tokens tokens of that stream (default 1M, or a tenth of a corpus under 2M tokens;
the document they end in is cut in two)
are the validation set, <name>_val_000000.bin; the rest follow as <name>_train_000001.bin, ...
of --shard_tokens tokens each, in data/<name>/ (or --out_dir), with meta.json, swapped in whole
once complete: a dataset already there is replaced then, and said so. Run again with the same
arguments, an interrupted run continues where it stopped. Importable: prepare(...).
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
import configurator
from fitgpt import corpus, staging
from fitgpt.errors import ConfigError, exit_on_error


def prepare(
    inputs: list[str],
    out_dir: str,
    name: str = "text",
    text_field: str = "text",
    val_tokens: int | None = None,
    shard_tokens: int = 100_000_000,
    max_tokens: int | None = None,
    num_proc: int | None = None,
    tokenizer_model: str | None = None,
    vocab_size: int | None = None,
    vocab_chars: int = 100_000_000,
) -> tuple[int, int]:
    """Tokenize the files matching the glob patterns inputs into shards and meta.json in out_dir;
    val_tokens None: 1M, or a tenth of a small corpus. GPT-2's BPE, unless tokenizer_model (a
    SentencePiece model) or vocab_size (train one on vocab_chars characters) says otherwise.
    Returns (shards, tokens)."""
    if val_tokens is not None and val_tokens < 1:
        raise ConfigError(f"--val_tokens must be at least 1, got {val_tokens}")
    files = corpus.expand(inputs)
    val_tokens = val_tokens or corpus.val_tokens_for(files, 1_000_000, text_field)
    job = {  # what decides the dataset's bytes: the same job resumes, another replaces it
        "inputs": staging.files_identity(files),
        "name": name,
        "text_field": text_field,
        "val_tokens": val_tokens,
        "shard_tokens": shard_tokens,
        "tokenizer_model": corpus.tokenizer_model_identity(tokenizer_model),
        "vocab_size": vocab_size,
        "vocab_chars": vocab_chars,
    }
    with staging.building(out_dir, job) as stage:
        model_file, meta = corpus.dataset_vocabulary(
            stage, tokenizer_model, vocab_size, lambda: corpus.iter_documents(files, text_field), vocab_chars
        )
        shards, tokens = corpus.write_dataset(
            corpus.iter_documents(files, text_field),
            stage,
            name,
            meta,
            shard_tokens,
            val_tokens=val_tokens,
            max_tokens=max_tokens,
            model_file=model_file,
            num_proc=num_proc,
        )
        corpus.require_train_tokens(stage, name, tokens, val_tokens, "pass a smaller --val_tokens", out_dir=out_dir)
    return shards, tokens


def main(argv=None):
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--input", dest="inputs", nargs="+", required=True, metavar="FILES", help="files or globs")
    parser.add_argument("--name", default="text", help="shard name prefix and folder data/<name>")
    parser.add_argument("--out_dir", help="default: data/<name>")
    parser.add_argument("--text_field", default="text", help="record field holding the text (jsonl/parquet)")
    parser.add_argument(
        "--val_tokens", type=int, help="the first tokens, held out (default 1M, a tenth of a small corpus)"
    )
    corpus.add_vocabulary_arguments(parser, "the first --vocab_chars characters")
    parser.add_argument(
        "--vocab_chars", type=lambda s: int(float(s)), default=100_000_000, help="text the vocabulary is learnt from"
    )
    corpus.add_writer_arguments(parser)
    args = parser.parse_args(argv)
    args.out_dir = args.out_dir or os.path.join(HERE, "..", args.name)
    shards, tokens = prepare(**vars(args))  # the options are named as prepare's parameters
    print(f"{tokens:,} tokens in {shards} shards in {args.out_dir}")


if __name__ == "__main__":
    exit_on_error(main)
