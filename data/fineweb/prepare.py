"""
FineWeb / FineWeb-Edu as GPT-2 token shards, like llm.c's dev/data/fineweb.py.

    python data/fineweb/prepare.py                                    # sample-10BT, streamed from the Hub
    python data/fineweb/prepare.py --dataset fineweb-edu --subset sample-100BT --max_tokens 14.6e9
    python data/fineweb/prepare.py --local 'fineweb/*.parquet'         # files already on disk, offline

Streams the documents (no copy of the dataset is stored, none is held in memory), tokenizes
them in --num_proc processes, each document preceded by <|endoftext|> (50256), and writes shards
of --shard_tokens tokens, llm.c's layout: <name>_val_000000.bin (the first shard; for a small
--local corpus, under 2 shards, its first tenth), then
<name>_train_000001.bin, ... with <name> = fineweb or fineweb_edu, plus meta.json, in
data/<name>/ (or --out_dir), swapped in whole once complete (the folder's old dataset stays as it
is until then). Run again with the same arguments, an interrupted run continues where it stopped
(the documents already in shards are streamed again but not tokenized); other arguments start
afresh. Importable: prepare(...) does the same.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", ".."))
import configurator
from fitgpt import corpus, staging
from fitgpt.downloads import require_hub
from fitgpt.errors import ConfigError, exit_on_error
from fitgpt.tokenization import GPT2_META

REPOS = {"fineweb": "HuggingFaceFW/fineweb", "fineweb-edu": "HuggingFaceFW/fineweb-edu"}


def default_out_dir(dataset):
    return os.path.join(HERE, "..", dataset.replace("-", "_"))


def hub_documents(dataset, subset):
    require_hub(f"{REPOS[dataset]} ({subset})", "offline, pass --local 'path/*.parquet' with the dataset's files")
    from datasets import load_dataset

    ds = load_dataset(REPOS[dataset], name=subset, split="train", streaming=True)
    return corpus.dataset_texts(ds, "text", f"{REPOS[dataset]} ({subset})")


def prepare(
    dataset: str = "fineweb",
    subset: str = "sample-10BT",
    local: list[str] | None = None,
    out_dir: str | None = None,
    shard_tokens: int = 100_000_000,
    max_tokens: int | None = None,
    num_proc: int | None = None,
    text_field: str = "text",
) -> tuple[int, int]:
    """Write the shards and meta.json; local: glob patterns of .parquet/.jsonl/.txt files to read
    instead of the Hub (a small corpus: its first tenth is the val split). Returns (shards, tokens)."""
    if dataset not in REPOS:
        raise ConfigError(f"unknown dataset {dataset!r}; choose one of {', '.join(REPOS)}")
    name = dataset.replace("-", "_")
    out_dir = out_dir or default_out_dir(dataset)
    if local:
        files = corpus.expand(local)
        docs, val_tokens = (
            corpus.iter_documents(files, text_field),
            corpus.val_tokens_for(files, shard_tokens, text_field),
        )
        source = staging.files_identity(files)
    else:
        docs, val_tokens, source = hub_documents(dataset, subset), shard_tokens, f"{REPOS[dataset]} {subset}"
    job = {"source": source, "name": name, "text_field": text_field, "shard_tokens": shard_tokens}
    with staging.building(out_dir, job) as stage:
        shards, tokens = corpus.write_dataset(
            docs, stage, name, GPT2_META, shard_tokens, val_tokens=val_tokens, max_tokens=max_tokens, num_proc=num_proc
        )
        fix = "pass a smaller --shard_tokens (the val split is one shard)"
        corpus.require_train_tokens(stage, name, tokens, val_tokens, fix, out_dir=out_dir)
    return shards, tokens


def main(argv=None):
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--dataset", default="fineweb", choices=sorted(REPOS))
    parser.add_argument(
        "--subset",
        default="sample-10BT",
        help="Hub config: sample-10BT, sample-100BT, sample-350BT, CC-MAIN-2024-10, ...",
    )
    parser.add_argument("--local", nargs="+", metavar="FILES", help="read these files (globs) instead of the Hub")
    parser.add_argument("--text_field", default="text", help="record field holding the text (--local jsonl/parquet)")
    parser.add_argument("--out_dir", help="default: data/fineweb or data/fineweb_edu")
    corpus.add_writer_arguments(parser)
    args = parser.parse_args(argv)
    shards, tokens = prepare(**vars(args))  # the options are named as prepare's parameters
    print(f"{tokens:,} tokens in {shards} shards in {args.out_dir or default_out_dir(args.dataset)}")


if __name__ == "__main__":
    exit_on_error(main)
