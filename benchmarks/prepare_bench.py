"""
How close data preparation comes to the tokenizer's own speed on this machine.

    python benchmarks/prepare_bench.py [--mchars 48] [--num_proc N] [--scale 4]

Writes a corpus of --mchars million characters (random passages of tiny shakespeare, 500-6000
characters each) as 8 files, jsonl and parquet alternating, to a temp folder, then measures:
  1. tiktoken GPT-2 encode_ordinary, one document at a time, in one process (tokens/s);
  2. data/text/prepare.py with --num_proc workers, each run in a fresh child process, timing
     its prepare() call (reading, tokenizing, writing shards), on all files, on the first 2,
     and on all files --scale times over (hard links: a corpus --scale times as large).
It prints prepare / (num_proc x single-process rate), the parallel efficiency (target >= 90%),
end to end and marginal ((all - first 2) tokens / (all - first 2) seconds: the steady rate, as
on a real corpus where the ~0.15 s of start-up vanishes), and end to end on the larger corpus;
the same in CPU time (CPU per token of the single process / of prepare and its workers), which
other load on the machine skews less than wall time; and the peak RSS of prepare's main process
and of its largest worker, over all runs.
"""

import argparse
import json
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, ROOT)
import configurator
from fitgpt.errors import exit_on_error

if "TIKTOKEN_CACHE_DIR" not in os.environ and os.path.isdir(os.path.join(SHARED, "tiktoken_cache")):
    os.environ["TIKTOKEN_CACHE_DIR"] = os.path.join(SHARED, "tiktoken_cache")


def make_corpus(text, chars, seed=0):
    rng = random.Random(seed)
    docs, total = [], 0
    while total < chars:
        n = rng.randint(500, 6000)
        start = rng.randrange(len(text) - n)
        docs.append(text[start : start + n])
        total += n
    return docs


def link_copies(files, folder, scale):
    """files, then hard links to them in folder/copy1, ..., folder/copy<scale - 1> (same names)."""
    out = list(files)
    for k in range(1, scale):
        os.mkdir(os.path.join(folder, f"copy{k}"))
        for path in files:
            out.append(os.path.join(folder, f"copy{k}", os.path.basename(path)))
            os.link(path, out[-1])
    return out


def write_files(docs, folder, parts=8):
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths, step = [], -(-len(docs) // parts)
    for i in range(parts):
        chunk = docs[i * step : (i + 1) * step]
        if i % 2:
            paths.append(os.path.join(folder, f"part{i}.parquet"))
            pq.write_table(pa.table({"text": chunk}), paths[-1])
        else:
            paths.append(os.path.join(folder, f"part{i}.jsonl"))
            with open(paths[-1], "w", encoding="utf-8") as f:
                f.writelines(json.dumps({"text": d}) + "\n" for d in chunk)
    return paths


def cpu_seconds(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def encode_all(docs):
    import tiktoken

    enc = tiktoken.get_encoding("gpt2")
    return sum(len(enc.encode_ordinary(d)) for d in docs)


def single_process(docs):
    """(tokens, seconds, CPU seconds) of encoding docs one by one in this process."""
    encode_all(docs[:10])  # load the tokenizer first
    t0, c0 = time.perf_counter(), time.process_time()
    tokens = encode_all(docs)
    return tokens, time.perf_counter() - t0, time.process_time() - c0


def parallel_raw(docs, num_proc):
    """Seconds that num_proc processes take to encode docs from memory (every num_proc-th each), with no
    reading, IPC or writing: what this machine's cores give tiktoken right now, the ceiling for
    prepare. Run after single_process: the forked workers inherit the loaded tokenizer."""
    global _DOCS
    _DOCS = docs  # forked workers inherit it: nothing is pickled
    with multiprocessing.get_context("fork").Pool(num_proc) as pool:
        t0 = time.perf_counter()
        pool.map(_encode_share, [(i, num_proc) for i in range(num_proc)])
        return time.perf_counter() - t0


def _encode_share(share):
    i, n = share
    return encode_all(_DOCS[i::n])


def child(out_dir, files, num_proc):
    """One prepare() call, in a fresh process so that its RSS and CPU time are prepare's alone."""
    sys.path.insert(0, os.path.join(ROOT, "data", "text"))
    from prepare import prepare

    c0 = cpu_seconds(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    _, tokens = prepare(files, out_dir, name="bench", val_tokens=100_000, num_proc=num_proc)
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds(resource.RUSAGE_SELF) - c0 + cpu_seconds(resource.RUSAGE_CHILDREN)
    print(
        json.dumps(
            {
                "tokens": tokens,
                "seconds": seconds,
                "cpu": cpu,
                "rss_main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "rss_worker": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            }
        )
    )


def run_child(out_dir, files, num_proc):
    out = subprocess.run(
        [sys.executable, __file__, "--num_proc", str(num_proc), "--child", out_dir, *files],
        capture_output=True,
        text=True,
    )
    if out.returncode:
        sys.exit(f"error: the prepare run failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    parser = configurator.ArgumentParser(__doc__)
    parser.add_argument("--mchars", type=float, default=48, help="corpus size, millions of characters")
    parser.add_argument("--num_proc", type=int, default=os.cpu_count())
    parser.add_argument("--repeat", type=int, default=3, help="rounds; each figure is the best round's")
    parser.add_argument(
        "--scale",
        type=int,
        default=4,
        help="also time prepare on the corpus this many times over (same documents, 0 or 1: not)",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)  # out_dir files...
    args = parser.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1:], args.num_proc)
    with open(os.path.join(SHARED, "data", "tinyshakespeare.txt"), encoding="utf-8") as f:
        text = f.read()
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before the run")
    best, rss = {}, (0, 0)
    with tempfile.TemporaryDirectory() as tmp:
        docs = make_corpus(text, int(args.mchars * 1e6))
        files = write_files(docs, tmp)
        runs = [("full", files), ("part", files[:2])]
        if args.scale > 1:
            runs.append(("scaled", link_copies(files, tmp, args.scale)))
        print(
            f"corpus: {len(docs):,} documents, {sum(map(len, docs)) / 1e6:.1f}M characters, "
            f"{len(files)} files (jsonl + parquet); best of {args.repeat} rounds"
        )
        for r in range(args.repeat):  # rounds interleave the measurements, so that load from others hits all
            tokens, seconds, cpu = single_process(docs)
            rounds = {"single": seconds, "single_cpu": cpu, "raw": parallel_raw(docs, args.num_proc)}
            for which, subset in runs:
                result = run_child(os.path.join(tmp, f"{which}{r}"), subset, args.num_proc)
                rounds.update({which: result["seconds"], f"{which}_cpu": result["cpu"]})
                best[f"{which}_tokens"] = result["tokens"]
                rss = max(rss[0], result["rss_main"]), max(rss[1], result["rss_worker"])
            best.update({k: min(v, best.get(k, v)) for k, v in rounds.items()})
    single, raw = tokens / best["single"], tokens / best["raw"]
    full_tokens, more_tokens = best["full_tokens"], best["full_tokens"] - best["part_tokens"]
    rate, marginal = full_tokens / best["full"], more_tokens / (best["full"] - best["part"])
    cpu_rate, marginal_cpu_rate = full_tokens / best["full_cpu"], more_tokens / (best["full_cpu"] - best["part_cpu"])
    ideal, single_cpu_rate = args.num_proc * single, tokens / best["single_cpu"]
    print(
        f"tiktoken encode_ordinary from memory: 1 process {single / 1e6:.2f}M tokens/s ({tokens:,} tokens), "
        f"{args.num_proc} processes {raw / 1e6:.2f}M tokens/s ({raw / single:.2f}x)"
    )
    print(
        f"prepare, {args.num_proc} processes: {full_tokens:,} tokens in {best['full']:.2f} s "
        f"({best['full_cpu']:.2f} s CPU): {rate / 1e6:.2f}M tokens/s end to end, {marginal / 1e6:.2f}M marginal"
    )
    print(f"efficiency, prepare / ({args.num_proc} x single-process), target >= 90%:")
    print(f"  wall time: {rate / ideal:.1%} end to end, {marginal / ideal:.1%} marginal")
    if args.scale > 1:
        scaled = best["scaled_tokens"] / best["scaled"]
        print(
            f"  wall time on {args.scale}x the corpus ({best['scaled_tokens']:,} tokens in {best['scaled']:.2f} s, "
            f"{scaled / 1e6:.2f}M tokens/s): {scaled / ideal:.1%} end to end"
        )
    print(
        f"  CPU time:  {cpu_rate / single_cpu_rate:.1%} end to end, {marginal_cpu_rate / single_cpu_rate:.1%} marginal"
    )
    print(
        f"prepare / {args.num_proc} processes encoding from memory: {rate / raw:.1%} end to end, "
        f"{marginal / raw:.1%} marginal"
    )
    print(f"peak RSS: prepare main process {rss[0]:.0f} MB, largest worker {rss[1]:.0f} MB")


if __name__ == "__main__":
    exit_on_error(main)
