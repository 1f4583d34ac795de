"""Bits per byte: the val text's byte count against a hand count for each tokenizer, kept in
meta.json, and the val_bpb a run logs (or the one line saying it cannot)."""

import json
import math
import os
import shutil

import pytest
import sentencepiece

import train
from conftest import load_script, tiny_settings
from fitgpt.bpb import val_bytes
from fitgpt.shards import read_meta, shard_name, write_meta, write_shard
from fitgpt.tokenization import GPT2_META, sentencepiece_meta, train_sentencepiece

DOCS = ["First Citizen:\nBefore we proceed any further, hear me speak.\n", "naïve café 😀 — ünïcödé ñ", "x" * 50]


def hand_count(texts):
    return sum(len(t.encode("utf-8")) for t in texts)


def write_val(folder, meta, tokens):
    os.makedirs(folder, exist_ok=True)
    write_shard(os.path.join(folder, shard_name("t", "val", 0)), tokens)
    write_meta(str(folder), meta)


def test_char_bytes_are_the_val_texts(tmp_path):
    text = "".join(DOCS) * 5
    out = str(tmp_path / "char")
    meta = load_script("shakespeare_char").prepare(text, out)
    val_text = text[int(len(text) * 0.9) :]
    assert meta["val_bytes"] == read_meta(out)["val_bytes"] == {"tokens": len(val_text), "bytes": hand_count(val_text)}
    assert hand_count(val_text) > len(val_text)  # multi-byte characters are counted as their bytes


def test_gpt2_bytes_leave_out_the_end_of_text_tokens(tmp_path, gpt2_encoding):
    eot = GPT2_META["eot_id"]
    tokens = [t for d in DOCS for t in [eot] + gpt2_encoding.encode_ordinary(d)]
    write_val(tmp_path, GPT2_META, tokens)
    assert val_bytes(str(tmp_path), GPT2_META) == ({"tokens": len(tokens), "bytes": hand_count(DOCS)}, None)
    assert read_meta(str(tmp_path))["val_bytes"]["bytes"] == hand_count(DOCS)  # kept for the next run


def test_sentencepiece_bytes_leave_out_bos_and_the_dummy_prefix(tmp_path, shakespeare_text):
    model = train_sentencepiece([shakespeare_text[:20_000], *DOCS], 400, str(tmp_path))
    meta = sentencepiece_meta(model)
    sp = sentencepiece.SentencePieceProcessor(model_file=model)
    assert all(sp.decode(sp.encode(d)) == d for d in DOCS)
    tokens = [t for d in DOCS for t in [meta["eot_id"]] + sp.encode(d)]
    write_val(tmp_path, meta, tokens)
    assert val_bytes(str(tmp_path), meta)[0] == {"tokens": len(tokens), "bytes": hand_count(DOCS)}


def test_a_stale_count_is_redone_and_a_folder_without_meta_has_none(tmp_path):
    meta = {"tokenizer": "char", "vocab_size": 3, "eot_id": None, "chars": ["a", "é", "\n"]}
    write_val(tmp_path, {**meta, "val_bytes": {"tokens": 2, "bytes": 2}}, [0, 1, 2, 1])  # counted for another split
    assert val_bytes(str(tmp_path), read_meta(str(tmp_path)))[0] == {"tokens": 4, "bytes": 6}
    counts, note = val_bytes(str(tmp_path), None)
    assert counts is None and note.endswith("has no meta.json, so the text of its tokens is unknown; no bpb logged")


def records(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def test_a_run_logs_bits_per_byte_and_a_bare_folder_says_once_it_cannot(char_dataset, tmp_path, capsys):
    out = str(tmp_path / "run")
    train.run(tiny_settings(data_dir=char_dataset, out_dir=out, max_iters=10, eval_interval=5))
    counts = read_meta(char_dataset)["val_bytes"]
    evals = [r for r in records(out) if "val_loss" in r]
    assert [r["iter"] for r in evals] == [0, 5, 10]
    for r in evals:
        assert r["val_bpb"] == pytest.approx(r["val_loss"] * counts["tokens"] / counts["bytes"] / math.log(2))
    stdout = capsys.readouterr().out
    assert f"val loss {evals[-1]['val_loss']:.4f}, val {evals[-1]['val_bpb']:.4f} bits per byte" in stdout
    with open(os.path.join(out, "config.json")) as f:
        assert json.load(f)["dataset"]["val_bytes"] == counts

    bare = tmp_path / "bare"  # llm.c-style: shards only
    bare.mkdir()
    for name in os.listdir(char_dataset):
        if name.endswith(".bin"):
            shutil.copy(os.path.join(char_dataset, name), bare / name)
    out = str(tmp_path / "bare-run")
    train.run(tiny_settings(data_dir=str(bare), out_dir=out, vocab_size=65, max_iters=4, eval_interval=2))
    stdout = capsys.readouterr().out
    assert stdout.count("bits per byte") == 1 and "has no meta.json, so the text of its tokens is unknown" in stdout
    assert not any("val_bpb" in r for r in records(out)) and any("val_loss" in r for r in records(out))
