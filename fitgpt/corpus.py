"""
What the data/*/prepare.py scripts share: documents from local files (iter_documents) or a
datasets stream (dataset_texts), tokenization in worker processes (tokenize), and a streaming
shard writer that resumes an interrupted run (ShardWriter; write_dataset puts it all together).
The workers also parse local files, so that the main process, which only reads and writes,
leaves them the CPU: the throughput is close to the tokenizer's on all cores
(benchmarks/prepare_bench.py).

The vocabulary (dataset_vocabulary) is GPT-2's BPE, an existing SentencePiece model (e.g. Llama
2's tokenizer.model) or one trained on the data; the SentencePiece model file is kept beside the
shards. The token stream is every document, in order, as [delimiter] + its tokens (delimiter:
GPT-2's end-of-text 50256, or a SentencePiece model's BOS as in llama2.c). The writer cuts that
stream into fixed-size shards (shards.py format), val first, so shard k depends only on the
documents and the sizes. Memory stays bounded whatever the corpus: documents are streamed, a few batches
are in flight, and one shard-sized uint16 buffer is filled and written.

Resuming: the scripts write into a staging folder (staging.building), where shards are only
ever visible complete (shards.write_shard renames a finished temp file), and delimiters appear
only between documents, so the full shards already there say how many documents they hold and
how far into the last one they reach. A rerun of the same job keeps them, skips those documents
without tokenizing them, and continues from that token: its output is byte-identical to an
uninterrupted run. Bad input (another encoding, a binary file, a broken JSON line) is one line
naming the file and the line.
"""

import argparse
import glob
import json
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing

import numpy as np
from tqdm import tqdm

from fitgpt import staging
from fitgpt.bpb import val_bytes
from fitgpt.downloads import tiktoken_encoding
from fitgpt.errors import DataError, RunFailure
from fitgpt.fsutil import atomic_write
from fitgpt.shards import open_tokens, read_header, read_meta, shard_name, write_meta, write_shard
from fitgpt.tokenization import GPT2_META, sentencepiece_meta, train_sentencepiece

BATCH_BYTES = 1 << 20  # text per worker task: ~0.1 s of tokenizing, so IPC costs little


def expand(patterns: list[str]) -> list[str]:
    """Files matching each glob pattern, sorted within a pattern, in pattern order."""
    files = []
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise DataError(f"{pattern}: no such file (or no file matches the pattern)")
        for path in matches:
            if os.path.isdir(path):
                raise DataError(f"{path}: a directory, not a file; pass the files in it, e.g. '{path}/*.txt'")
        files += matches
    return list(dict.fromkeys(files))  # a file matched by two patterns is read once


def add_writer_arguments(parser: argparse.ArgumentParser, max_tokens: bool = True) -> None:
    """The shard-writing options every data/*/prepare.py takes."""
    parser.add_argument("--shard_tokens", type=int, default=100_000_000, help="tokens per shard")
    if max_tokens:
        parser.add_argument(
            "--max_tokens", type=lambda s: int(float(s)), help="stop after this many tokens, e.g. 14.6e9"
        )
    parser.add_argument("--num_proc", type=int, default=os.cpu_count(), help="tokenizer processes")


def parquet_text_bytes(pf, field: str) -> int:
    """The uncompressed size of a pyarrow ParquetFile's text column, from the file's metadata."""
    meta = pf.metadata
    columns = (meta.row_group(g).column(c) for g in range(meta.num_row_groups) for c in range(meta.num_columns))
    return sum(column.total_uncompressed_size for column in columns if column.path_in_schema == field)


def open_parquet(path: str, field: str):
    """A pyarrow ParquetFile that has the text column, or a one-line error naming the columns it has."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(path)
    if field not in pf.schema_arrow.names:
        raise DataError(
            f"{path}: no {field!r} column (it has {', '.join(pf.schema_arrow.names)}); pass the right --text_field"
        )
    kind = pf.schema_arrow.field(field).type
    if not (pa.types.is_string(kind) or pa.types.is_large_string(kind)):
        raise DataError(f"{path}: its {field!r} column holds {kind}, not text; pass the right --text_field")
    return pf


def text_bytes(path: str, field: str) -> int:
    """About how many bytes of text a file holds."""
    if not path.lower().endswith(".parquet"):
        return os.path.getsize(path)
    return parquet_text_bytes(open_parquet(path, field), field)


def val_tokens_for(files: list[str], wanted: int, field: str = "text") -> int:
    """The val split's size for local files: wanted tokens, or the first tenth of a corpus smaller
    than twice that, so that a small corpus still gets both splits. The corpus size is estimated
    from its bytes (GPT-2's BPE makes about one token per 4 bytes of English), which keeps it the
    same from one run to the next (a resumed run must cut the stream where the first one did)."""
    size = sum(text_bytes(f, field) for f in files)
    if size == 0:
        raise DataError(f"{', '.join(files)}: the input held no text (empty files); nothing to train on")
    estimate = size // 4
    if estimate >= 2 * wanted:
        return wanted
    val = max(1, estimate // 10)
    print(f"small corpus (about {estimate:,} tokens): its first {val:,} tokens are the val split")
    return val


def require_train_tokens(folder: str, name: str, tokens: int, val_tokens: float, fix: str, *, out_dir: str) -> None:
    """Refuse a dataset (being built in folder, for out_dir) whose every token went to the val
    split: nothing to train on."""
    if tokens > val_tokens:
        return
    stream = [open_tokens(p) for p in glob.glob(os.path.join(folder, f"{name}_*.bin"))]
    delimiter = read_meta(folder)["eot_id"]
    if not stream or np.all(np.concatenate(stream) == delimiter):  # the delimiters of empty documents only
        raise DataError(f"{out_dir}: the input held no text (no documents, or only empty ones); nothing to train on")
    raise DataError(
        f"{out_dir}: all {tokens:,} tokens went to the val split and none to train; {fix}, "
        f"e.g. {max(1, tokens // 10):,}"
    )


def add_vocabulary_arguments(parser: argparse.ArgumentParser, trained_on: str) -> None:
    """--tokenizer_model and --vocab_size: a SentencePiece vocabulary instead of GPT-2's BPE."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--tokenizer_model",
        metavar="PATH",
        help="tokenize with this SentencePiece model as it is (e.g. Llama 2's tokenizer.model); copied to the dataset",
    )
    group.add_argument(
        "--vocab_size", type=int, help=f"train a SentencePiece vocabulary of this many pieces on {trained_on}"
    )


def dataset_vocabulary(
    out_dir: str,
    tokenizer_model: str | None = None,
    vocab_size: int | None = None,
    training_texts: Callable[[], Iterable[str]] | None = None,
    max_chars: float | None = None,
) -> tuple[str | None, dict]:
    """(SentencePiece model file or None, meta.json) of a dataset in out_dir: GPT-2's BPE by
    default; the SentencePiece model tokenizer_model, copied into out_dir (train.py, sample.py
    and export.py find it there by meta.json); or one of vocab_size pieces trained on the texts
    of training_texts() (up to max_chars characters of them)."""
    if tokenizer_model is None and vocab_size is None:
        return None, GPT2_META
    if tokenizer_model is not None:
        sentencepiece_meta(tokenizer_model)  # refuses an unusable model before anything is written
        model_file = copy_tokenizer_model(tokenizer_model, out_dir)
    else:
        model_file = train_sentencepiece(training_texts(), vocab_size, out_dir, max_chars)
    return model_file, sentencepiece_meta(model_file)


def copy_tokenizer_model(path: str, out_dir: str) -> str:
    """out_dir/<the file's name>, a copy of the SentencePiece model in path (written atomically)."""
    os.makedirs(out_dir, exist_ok=True)
    target = os.path.join(out_dir, os.path.basename(path))
    with open(path, "rb") as f:
        model = f.read()
    atomic_write(target, lambda f: f.write(model))
    return target


def tokenizer_model_identity(path: str | None) -> list | None:
    """A --tokenizer_model file's part of a prepare job (staging.building), refused first when it
    is not a usable SentencePiece model; None without one."""
    if path is None:
        return None
    sentencepiece_meta(path)
    return staging.files_identity([path])


def dataset_texts(ds, field: str, source: str) -> Iterator[str]:
    """The text field of every record of a datasets IterableDataset (e.g. streamed from the
    Hub), read in batches: much cheaper than record by record."""
    for batch in ds.iter(batch_size=1000):
        if field not in batch:
            raise DataError(
                f"{source}: records have no {field!r} field (they have {', '.join(batch)}); pass the right --text_field"
            )
        yield from batch[field]


def iter_documents(files: list[str], text_field: str = "text") -> "LocalDocuments":
    """Documents of local files, in order: a .txt file is one document; .jsonl/.json (JSON lines,
    or one list of objects) and .parquet files give one document per record with a non-null text,
    streamed (a JSON list is loaded whole). Read with json and pyarrow directly: datasets' loaders
    cost ~2 s to start, more per file, and 3x the time per byte for JSON lines.
    Iterating the result gives the texts; write_dataset takes its batches() instead."""
    for path in files:
        if os.path.splitext(path)[1].lower() not in (".txt", ".parquet", ".jsonl", ".json"):
            raise DataError(f"{path}: unsupported file type; use .txt, .jsonl, .json or .parquet")
    if any(path.lower().endswith(".parquet") for path in files):
        # imported now, not mid-run: forked workers then inherit it (they unpickle Arrow arrays)
        import pyarrow
        import pyarrow.parquet  # noqa: F401

        # malloc keeps freed memory for the next batch; pyarrow's default, mimalloc, hands it back to
        # the OS, and faulting it in again costs this process a third more CPU time per parquet byte
        pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    return LocalDocuments(files, text_field)


class LocalDocuments:
    """What iter_documents returns. Its batches() leave the parsing to the tokenizer processes: the
    main process only finds line boundaries in JSON lines files (a worker reads and parses the
    lines) and reads parquet files as Arrow arrays (a worker makes them strings)."""

    def __init__(self, files: list[str], text_field: str):
        self.files, self.field = files, text_field

    def __iter__(self) -> Iterator[str]:
        for read, source in self.batches():
            yield from read(source)

    def batches(self) -> Iterator[tuple[Callable, object]]:
        """(read, source) pairs: read(source) is the list of texts of the next documents."""
        for path in self.files:
            ext = os.path.splitext(path)[1].lower()
            if ext == ".txt":
                yield _read_text, path
            elif ext == ".parquet":
                yield from _parquet_batches(path, self.field)
            else:
                yield from _json_batches(path, self.field)


def decode_text(data: bytes, path: str, first_line: int = 1) -> str:
    """data, read from path from its line first_line on, as UTF-8 text; a binary file or text in
    another encoding is one line naming the file and the line."""
    if b"\x00" in data:
        line = first_line + data.count(b"\n", 0, data.index(b"\x00"))
        raise DataError(
            f"{path}: a binary file, not text (a NUL byte on line {line:,}); pass text files (.txt, .jsonl, .json, "
            f".parquet)"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = first_line + data.count(b"\n", 0, e.start)
        raise DataError(
            f"{path}: line {line:,} is not UTF-8 text (byte 0x{data[e.start]:02x}): the file is in another encoding; "
            f"convert it to UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > converted{os.path.splitext(path)[1]}"
        ) from None


def _read_text(path):
    with open(path, "rb") as f:
        return [decode_text(f.read(), path)]


def _parquet_batches(path, field):
    pf = open_parquet(path, field)
    # rows for about BATCH_BYTES of text, from the column's size in the file's metadata
    rows = max(1, BATCH_BYTES * pf.metadata.num_rows // max(parquet_text_bytes(pf, field), 1))
    for batch in pf.iter_batches(batch_size=rows, columns=[field]):
        yield _arrow_texts, batch.column(0)  # pickled as its buffers: no per-text work here


def _arrow_texts(array):
    return [text for text in array.to_pylist() if text is not None]


def _json_batches(path, field):
    with open(path, "rb") as f:
        if f.read(4096).lstrip().startswith(b"["):  # one JSON list: parsed whole, here
            f.seek(0)
            try:
                records = json.loads(decode_text(f.read(), path))
            except json.JSONDecodeError as e:
                raise DataError(
                    f"{path}: line {e.lineno:,} is not valid JSON ({e.msg}: column {e.colno}); fix that line"
                ) from None
            texts = _field_texts(enumerate(records), path, field, lambda i: f"record {i + 1:,}")
            yield from _text_batches(texts)
            return
        # JSON lines: runs of whole lines, as byte ranges that the worker reads (no text through a pipe)
        start, size = 0, os.fstat(f.fileno()).st_size
        while start < size:
            f.seek(start + BATCH_BYTES)
            f.readline()
            end = min(f.tell(), size)
            yield _json_lines, (path, start, end, field)
            start = end


def _json_lines(source):
    path, start, end, field = source
    with open(path, "rb") as f:
        f.seek(start)
        chunk = f.read(end - start)

    def where(i):  # the file's line number of the chunk's line i, counted only for an error
        return f"line {_lines_before(path, start) + i + 1:,}"

    records = []
    # bytes.splitlines breaks lines where text-mode reading does (\n, \r\n, \r), unlike str.splitlines
    for i, line in enumerate(chunk.splitlines()):
        if not line.strip():
            continue
        try:
            records.append((i, json.loads(line.decode("utf-8"))))
        except ValueError as e:  # UnicodeDecodeError or json.JSONDecodeError
            decode_text(line, path, _lines_before(path, start) + i + 1)  # binary, or another encoding
            raise DataError(
                f"{path}: {where(i)} is not valid JSON ({e.msg}: column {e.colno}); fix or remove that line (one "
                f"JSON object per line)"
            ) from None
    return _field_texts(records, path, field, where)


def _lines_before(path, offset):
    """How many lines of path end before byte offset."""
    count = 0
    with open(path, "rb") as f:
        while offset > 0 and (block := f.read(min(offset, 1 << 24))):
            count, offset = count + block.count(b"\n"), offset - len(block)
    return count


def _field_texts(records, path, field, where):
    """The non-null values of field in records, (index, record) pairs; where(index) names one in an error."""
    texts = []
    for i, record in records:
        if not isinstance(record, dict):
            raise DataError(
                f"{path}: {where(i)} is a JSON {type(record).__name__}, not an object; each record should be like "
                f'{{"{field}": "..."}}'
            )
        if field not in record:
            raise DataError(
                f"{path}: {where(i)} has no {field!r} field (it has {', '.join(record) or 'none'}); pass the right "
                f"--text_field"
            )
        if record[field] is None:
            continue
        if not isinstance(record[field], str):
            raise DataError(f"{path}: {where(i)}: its {field!r} is a JSON {type(record[field]).__name__}, not text")
        texts.append(record[field])
    return texts


def _text_batches(texts):
    """Texts in batches of about BATCH_BYTES characters, as (read, source) pairs."""
    batch, size = [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= BATCH_BYTES:
            yield list, batch
            batch, size = [], 0
    if batch:
        yield list, batch


def _skip(batches, n):
    """Batches without their first n documents, which are parsed here to be counted."""
    for read, source in batches:
        if n:
            texts = read(source)
            if len(texts) <= n:
                n -= len(texts)
                continue
            read, source, n = list, texts[n:], 0
        yield read, source


def load_encoder(model_file: str | None = None) -> Callable:
    """encode(text) -> token ids: GPT-2 (tiktoken), or the SentencePiece model in model_file."""
    if model_file is None:
        enc = tiktoken_encoding("gpt2")  # cached by tiktoken: forked workers inherit it

        def encode(text):
            try:  # a numpy array straight from tiktoken's buffer; "<|endoftext|>" in text stays text
                return enc.encode_to_numpy(text, disallowed_special=())
            except UnicodeEncodeError:  # lone surrogates: encode_ordinary replaces them
                return enc.encode_ordinary(text)

        return encode
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=model_file).encode


def _init_worker(model_file, delimiter, parent=None):
    global _encode, _delimiter
    _encode, _delimiter = load_encoder(model_file), np.array([delimiter], np.uint16)
    if parent is not None:  # a worker process: it ends with its parent, however the parent ends
        threading.Thread(target=_exit_with, args=(parent,), daemon=True).start()


def _exit_with(parent):
    """Exit once the parent process is gone (killed, even by SIGKILL, it cannot stop its workers,
    which would otherwise go on waiting for work)."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _encode_batch(read, source):
    parts = [np.empty(0, np.uint16)]  # a batch may hold no document (JSON lines of null texts)
    for text in read(source):
        parts += (_delimiter, _encode(text))
    # straight to uint16, 2 bytes a token back to the parent (ids are < 65536: see shards.write_shard)
    return np.concatenate(parts, dtype=np.uint16, casting="unsafe")


def tokenize(
    batches: Iterable, delimiter: int, model_file: str | None = None, num_proc: int | None = None
) -> Iterator[np.ndarray]:
    """The token stream of the documents in batches ((read, source) pairs: read(source), called in
    a worker, is a list of texts), each as [delimiter] + its tokens, as uint16 arrays (one per
    batch), in order, tokenized by num_proc worker processes. Only 2*num_proc batches are in
    flight at a time (Pool.imap would read the whole input ahead into memory)."""
    num_proc = num_proc or os.cpu_count()
    # loaded here first, forked workers inherit the tokenizer (tiktoken caches it) instead of
    # each loading it again; the initializer loads it where workers are spawned
    _init_worker(model_file, delimiter)
    # an executor, not multiprocessing.Pool: a worker killed (e.g. out of memory) fails the run
    # instead of hanging it forever
    with ProcessPoolExecutor(num_proc, initializer=_init_worker, initargs=(model_file, delimiter, os.getpid())) as pool:
        pending = deque()
        try:
            for read, source in batches:
                pending.append(pool.submit(_encode_batch, read, source))
                if len(pending) >= 2 * num_proc:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BrokenProcessPool:
            raise RunFailure(
                "a tokenizer process died (out of memory?); run the same command again to resume where it stopped"
            ) from None


class ShardWriter:
    """Shards <name>_<split>_<index>.bin in out_dir, numbered from first_index: the first
    val_tokens tokens go to val shards (math.inf: all of them), the rest to train shards,
    every shard shard_tokens long except the last; at most max_tokens in all. Complete shards
    already there are kept and writing continues after them (the last shard of a run is short,
    so it is rewritten: the stream may now go further)."""

    def __init__(self, out_dir, name, shard_tokens, val_tokens=0, first_index=0, max_tokens=None):
        if shard_tokens < 1:
            raise DataError(f"shard_tokens must be positive, got {shard_tokens}")
        self.out_dir, self.name, self.shard_tokens = out_dir, name, shard_tokens
        self.val_tokens, self.first_index = val_tokens, first_index
        self.max_tokens = math.inf if max_tokens is None else int(max_tokens)
        self.splits = [s for s, wanted in (("val", val_tokens > 0), ("train", val_tokens < math.inf)) if wanted]
        self.done = []  # complete shards, from first_index up to the first missing, invalid or short one
        self.index, self.total = first_index, 0  # next shard to write, tokens in shards
        while True:
            path, size = self.layout(self.index)
            try:
                if read_header(path) != size or self.total + size > self.max_tokens:
                    break
            except DataError:
                break
            self.done.append(path)
            self.index, self.total = self.index + 1, self.total + size

    def layout(self, index: int) -> tuple[str, int]:
        """(path, size) of shard index when full."""
        start = (index - self.first_index) * self.shard_tokens
        split, size = (
            ("val", min(self.shard_tokens, self.val_tokens - start))
            if start < self.val_tokens
            else ("train", self.shard_tokens)
        )
        return os.path.join(self.out_dir, shard_name(self.name, split, index)), size

    def resume_point(self, delimiter: int) -> tuple[int, int]:
        """(documents to skip, tokens to drop from the next one) to continue after the complete
        shards: they hold n delimiters, so documents 0..n-2 are whole in them and document n-1
        has its first `tail` tokens there."""
        docs, tail = 0, 0
        for path in self.done:
            tokens = open_tokens(path)
            starts = np.flatnonzero(tokens == delimiter)
            docs += len(starts)
            tail = len(tokens) - starts[-1] if len(starts) else tail + len(tokens)
        return max(docs - 1, 0), tail

    def write(self, arrays: Iterable[np.ndarray], progress=None) -> tuple[int, int]:
        """Write the token stream (uint16 arrays) after the complete shards, until it ends or
        max_tokens tokens are in shards; then delete stale shards beyond the end.
        Returns (index after the last shard, total tokens)."""
        for tmp in glob.glob(os.path.join(self.out_dir, f"{self.name}_*.bin.tmp.*")):
            os.remove(tmp)  # left by a killed run
        budget = self.max_tokens - self.total
        buf = np.empty(self.shard_tokens, dtype=np.uint16)
        fill = 0
        for tokens in arrays if budget > 0 else ():
            tokens = tokens[:budget] if len(tokens) > budget else tokens
            budget -= len(tokens)
            while len(tokens):
                path, size = self.layout(self.index)
                n = min(size - fill, len(tokens))
                buf[fill : fill + n] = tokens[:n]
                fill, tokens, self.total = fill + n, tokens[n:], self.total + n
                if fill == size:
                    write_shard(path, buf[:size])
                    self.index, fill = self.index + 1, 0
                if progress is not None:
                    progress.update(n)
            if budget == 0:
                break
        if fill:
            write_shard(self.layout(self.index)[0], buf[:fill])
            self.index += 1
        for split in self.splits:  # e.g. from an earlier run with a larger max_tokens
            for path in glob.glob(os.path.join(self.out_dir, f"{self.name}_{split}_*.bin")):
                match = re.fullmatch(rf"{re.escape(self.name)}_{split}_(\d+)\.bin", os.path.basename(path))
                if match and int(match.group(1)) >= self.index:
                    os.remove(path)
        return self.index, self.total


def write_dataset(
    docs: Iterable[str],
    out_dir: str,
    name: str,
    meta: dict,
    shard_tokens: int,
    val_tokens: float = 0,
    first_index: int = 0,
    max_tokens: float | None = None,
    model_file: str | None = None,
    num_proc: int | None = None,
    desc: str | None = None,
) -> tuple[int, int]:
    """Write meta.json, then tokenize an iterable of documents into shards (see ShardWriter),
    resuming after the complete shards already in out_dir (a staging.building folder: its job
    fixes the tokenizer and the documents), then count the val text's bytes into meta.json
    (bpb.py). Returns (index after the last shard, total tokens)."""
    os.makedirs(out_dir, exist_ok=True)
    write_meta(out_dir, meta)
    writer = ShardWriter(out_dir, name, shard_tokens, val_tokens, first_index, max_tokens)
    delimiter = meta["eot_id"]  # GPT-2's end-of-text, or a SentencePiece model's BOS
    skip, drop = writer.resume_point(delimiter)
    if writer.done:
        print(f"{name}: resuming after {len(writer.done)} complete shards ({writer.total:,} tokens)")
    batches = docs.batches() if isinstance(docs, LocalDocuments) else _text_batches(docs)
    with (
        closing(tokenize(_skip(batches, skip), delimiter, model_file, num_proc)) as arrays,
        tqdm(  # disable=None: quiet when stderr is not a terminal
            desc=desc or name, total=max_tokens, initial=writer.total, unit="tok", unit_scale=True, disable=None
        ) as progress,
    ):
        written = writer.write(_drop(arrays, drop), progress)
    val_bytes(out_dir, meta)  # counted once, kept in meta.json: bits per byte
    return written


def _drop(arrays, n):
    """The stream without its first n tokens."""
    for tokens in arrays:
        cut = min(n, len(tokens))
        n -= cut
        if cut < len(tokens):
            yield tokens[cut:]
