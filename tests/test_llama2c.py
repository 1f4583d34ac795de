"""llama2.c interop: model.bin computes in run.c's conventions what our model computes (read back
here by an independent reading of the format), v0 and v1 files round-trip, tokenizer.bin holds
what run.c reads, what run.c cannot run is refused, and a bad file is one line; then the workflow
through prepare, train, export and sample."""

import dataclasses
import json
import math
import os
import struct

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import export
import sample
import train
from conftest import cli, load_script, tiny_settings
from fitgpt.checkpoint import save_checkpoint
from fitgpt.errors import CheckpointError, ConfigError
from fitgpt.llama2c import MAGIC, check_exportable, export_llama2c, load_llama2c, write_llama2c
from fitgpt.tokenization import GPT2_META, get_tokenizer, load_sentencepiece, sentencepiece_meta, train_sentencepiece
from model import GPT, GPTConfig

LLAMA = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", bias=False, multiple_of=16)
VOCAB = 400


@pytest.fixture(scope="module")
def vocabulary(tmp_path_factory, shakespeare_text):
    """(folder, meta.json) of a 400-piece SentencePiece vocabulary trained on 20 KB of the text."""
    folder = tmp_path_factory.mktemp("vocabulary")
    model_file = train_sentencepiece([shakespeare_text[:20_000]], VOCAB, str(folder))
    return str(folder), sentencepiece_meta(model_file)


def tiny(**overrides):
    torch.manual_seed(0)
    model = GPT(
        GPTConfig(
            **{**LLAMA, "block_size": 32, "vocab_size": VOCAB, "n_layer": 2, "n_head": 4, "n_embd": 32, **overrides}
        )
    )
    with torch.no_grad():  # weights large enough that a misplaced row or rotation shows in the logits
        for p in model.parameters():
            p.normal_(0.0, 0.3) if p.dim() >= 2 else p.normal_(1.0, 0.1)  # matrices; norm gains near 1
    return model.eval()


def logits_of(model, idx):
    with torch.no_grad():
        return model(idx, idx)[0]


def run_c_logits(path, tokens):
    """The logits run.c computes for tokens, one position at a time, from a v0 file's bytes alone:
    adjacent (2i, 2i+1) rotary pairs, RoPE base 10000, RMSNorm epsilon 1e-5, SwiGLU, kv head h // (H/K)."""
    raw = open(path, "rb").read()
    dim, hidden, L, H, K, V, seq_len = struct.unpack_from("<7i", raw)
    tied, V, D = V > 0, abs(V), dim // H
    rest = torch.from_numpy(np.frombuffer(raw, "<f4", offset=28).copy())

    def take(*shape):
        nonlocal rest
        count = math.prod(shape)
        tensor, rest = rest[:count].view(shape), rest[count:]
        return tensor

    emb, rms_att, wq, wk, wv = take(V, dim), take(L, dim), take(L, H * D, dim), take(L, K * D, dim), take(L, K * D, dim)
    wo, rms_ffn, w1, w2, w3 = (
        take(L, dim, H * D),
        take(L, dim),
        take(L, hidden, dim),
        take(L, dim, hidden),
        take(L, hidden, dim),
    )
    rms_final, _, _ = take(dim), take(seq_len, D // 2), take(seq_len, D // 2)
    wcls = emb if tied else take(V, dim)
    assert rest.numel() == 0  # the file holds exactly these tensors

    def rmsnorm(x, gain):
        return x * torch.rsqrt(x.pow(2).mean() + 1e-5) * gain

    freqs = 1.0 / 10000.0 ** (torch.arange(0, D, 2) / D)

    def rotate(vectors, pos):  # (heads, D), pairs (2i, 2i+1) turned by pos * freqs[i]
        cos, sin = (pos * freqs).cos(), (pos * freqs).sin()
        even, odd = vectors[:, 0::2], vectors[:, 1::2]
        return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(1)

    keys, values, out = [[] for _ in range(L)], [[] for _ in range(L)], []
    for pos, token in enumerate(tokens):
        x = emb[token].clone()
        for layer in range(L):
            xb = rmsnorm(x, rms_att[layer])
            q = rotate((wq[layer] @ xb).view(H, D), pos)
            keys[layer].append(rotate((wk[layer] @ xb).view(K, D), pos))
            values[layer].append((wv[layer] @ xb).view(K, D))
            k = torch.stack(keys[layer]).repeat_interleave(H // K, dim=1)  # (t, H, D)
            v = torch.stack(values[layer]).repeat_interleave(H // K, dim=1)
            weights = (torch.einsum("hd,thd->ht", q, k) / math.sqrt(D)).softmax(dim=-1)
            x = x + wo[layer] @ torch.einsum("ht,thd->hd", weights, v).reshape(-1)
            xb = rmsnorm(x, rms_ffn[layer])
            x = x + w2[layer] @ (F.silu(w1[layer] @ xb) * (w3[layer] @ xb))
        out.append(wcls @ rmsnorm(x, rms_final))
    return torch.stack(out)


@pytest.mark.parametrize("n_kv_heads, tied", [(4, True), (2, False), (1, True)], ids=["mha-tied", "gqa-untied", "mqa"])
def test_model_bin_computes_what_our_model_does_in_run_c_conventions(tmp_path, vocabulary, n_kv_heads, tied):
    model = tiny(n_kv_heads=n_kv_heads, tie_embeddings=tied)
    path = str(tmp_path / "model.bin")
    header, tokenizer_bin = export_llama2c(model, vocabulary[1], vocabulary[0], path)
    hidden = model.config.hidden_dim
    with open(path, "rb") as f:
        assert struct.unpack("<7i", f.read(28)) == (32, hidden, 2, 4, n_kv_heads, VOCAB if tied else -VOCAB, 32)
    D, kv = 8, n_kv_heads * 8
    floats = VOCAB * 32 + 2 * (2 * 32) + 2 * (32 * 32 + 2 * kv * 32 + 32 * 32 + 3 * hidden * 32) + 32 + 2 * 32 * D // 2
    assert os.path.getsize(path) == 28 + 4 * (floats + (0 if tied else VOCAB * 32))
    assert tokenizer_bin == str(tmp_path / "tokenizer.bin") and os.path.exists(tokenizer_bin)
    tokens = torch.randint(0, VOCAB, (20,))
    torch.testing.assert_close(
        run_c_logits(path, tokens.tolist()), logits_of(model, tokens[None])[0], atol=1e-4, rtol=0
    )


@pytest.mark.parametrize("version", [0, 1])
@pytest.mark.parametrize("n_kv_heads, tied", [(2, True), (4, False)], ids=["gqa-tied", "untied"])
def test_round_trip_gives_identical_logits(tmp_path, version, n_kv_heads, tied):
    model = tiny(n_kv_heads=n_kv_heads, tie_embeddings=tied)
    path = str(tmp_path / "model.bin")
    write_llama2c(model, path, version)
    if version == 1:  # 256-byte header: magic, version, the shape, the tied flag; no RoPE tables
        raw = open(path, "rb").read()
        assert struct.unpack_from("<Ii7iB", raw) == (
            MAGIC,
            1,
            32,
            model.config.hidden_dim,
            2,
            4,
            n_kv_heads,
            VOCAB,
            32,
            int(tied),
        )
        assert raw[:4] == b"24ka" and not any(raw[37:256])
        assert len(raw) == 256 + 4 * (
            sum(p.numel() for p in model.parameters())
            - (model.config.padded_vocab_size - VOCAB) * 32 * (1 if tied else 2)
        )
    loaded = load_llama2c(path).eval()
    # the same shape, the hidden size now given as it is rather than by llama's rounding rule
    assert loaded.config == dataclasses.replace(model.config, mlp_hidden=model.config.hidden_dim, multiple_of=256)
    assert torch.equal(loaded.transformer.wte.weight[VOCAB:], torch.zeros(model.config.padded_vocab_size - VOCAB, 32))
    assert (loaded.lm_head.weight is loaded.transformer.wte.weight) == tied
    idx = torch.randint(0, VOCAB, (2, 32))
    assert torch.equal(logits_of(loaded, idx), logits_of(model, idx))
    assert load_llama2c(path, block_size=64, dropout=0.1).config.block_size == 64  # RoPE: any context


def test_tokenizer_bin_holds_every_piece_as_run_c_reads_it(tmp_path, vocabulary):
    folder, meta = vocabulary
    export_llama2c(tiny(), meta, folder, str(tmp_path / "model.bin"))
    raw = open(tmp_path / "tokenizer.bin", "rb").read()
    sp = load_sentencepiece(os.path.join(folder, meta["model_file"]))
    (max_length,), at, pieces = struct.unpack_from("<i", raw), 4, []
    for _ in range(VOCAB):
        score, length = struct.unpack_from("<fi", raw, at)
        pieces.append((score, raw[at + 8 : at + 8 + length].decode("utf-8")))
        at += 8 + length
    assert at == len(raw) and max_length == max(len(p.encode()) for _, p in pieces)
    assert [p for _, p in pieces[:4]] == ["<unk>", "\n<s>\n", "\n</s>\n", "<0x00>"]  # byte pieces from id 3
    assert pieces[sp.piece_to_id("\u2581t")][1] == " t"  # SentencePiece's word boundary is run.c's space
    assert [s for s, _ in pieces] == [np.float32(sp.get_score(i)) for i in range(VOCAB)]


@pytest.mark.parametrize(
    "overrides, named",
    [
        (dict(norm="layernorm"), "norm='layernorm'"),
        (dict(bias=True), "bias=True"),
        (dict(pos_emb="learned"), "pos_emb='learned'"),
        (dict(mlp="gelu"), "mlp='gelu'"),
        (dict(qk_norm=True), "qk_norm=True"),
        (dict(rope_theta=500.0), "rope_theta=500.0"),
        (dict(vocab_size=300), "vocab_size=300"),
    ],
)
def test_refuses_what_run_c_cannot_run(tmp_path, vocabulary, overrides, named):
    with pytest.raises(ConfigError, match="cannot export for llama2.c's run.c") as e:
        export_llama2c(tiny(**overrides), vocabulary[1], vocabulary[0], str(tmp_path / "model.bin"))
    assert named in str(e.value) and "\n" not in str(e.value)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("meta", [None, GPT2_META, {"tokenizer": "char", "vocab_size": 65, "chars": []}])
def test_refuses_a_vocabulary_that_is_not_sentencepiece(tmp_path, meta):
    with pytest.raises(ConfigError, match=r"tokenizer='(gpt2|char)' .*--vocab_size N or --tokenizer_model PATH"):
        check_exportable(tiny().config, meta, str(tmp_path))


def test_bad_files_are_one_line(tmp_path):
    model = tiny()
    good = tmp_path / "model.bin"
    write_llama2c(model, str(good))
    raw = good.read_bytes()
    cases = {
        "truncated.bin": (
            raw[:-4],
            r"truncated\.bin: 1[\d,]+ bytes, but a llama2.c v0 file of its header's shape \(dim=32, ",
        ),
        "header.bin": (raw[:20], "too short for a llama2.c checkpoint header"),
        "zip.bin": (b"PK\x03\x04" + raw[4:], r"not a llama2.c checkpoint \(its header would say dim=67324752"),
        "v2.bin": (struct.pack("<Ii", MAGIC, 2) + bytes(248), "format version 2; only the fp32 versions 0 and 1"),
        "missing.bin": (None, "no such llama2.c checkpoint file"),
    }
    for name, (data, message) in cases.items():
        if data is not None:
            (tmp_path / name).write_bytes(data)
        with pytest.raises(CheckpointError, match=message) as e:
            load_llama2c(str(tmp_path / name))
        assert "\n" not in str(e.value)


def test_sample_and_train_refuse_a_bad_file_in_one_line(tmp_path, vocabulary, sp_dataset, capsys):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(b"\0" * 100)
    code, _, stderr = cli(sample.main, [f"--init_from={bad}", f"--tokenizer={vocabulary[0]}"], capsys)
    assert code == 2 and stderr.startswith("error: ") and "not a llama2.c checkpoint" in stderr
    assert stderr.count("\n") == 1
    args = [f"--init_from={bad}", f"--data_dir={sp_dataset}", f"--out_dir={tmp_path / 'out'}", "--device=cpu"]
    code, _, stderr = cli(train.main, args, capsys)
    assert code == 2 and "bad.bin: not a llama2.c checkpoint" in stderr and stderr.count("\n") == 1
    write_llama2c(tiny(), str(bad))
    code, _, stderr = cli(sample.main, [f"--init_from={bad}"], capsys)
    assert code == 2 and "holds no tokenizer; pass --tokenizer=PATH" in stderr


@pytest.fixture(scope="module")
def sp_dataset(tmp_path_factory, shakespeare_text):
    """60 KB of the text prepared by data/text/prepare.py with a trained 400-piece vocabulary."""
    folder = tmp_path_factory.mktemp("sp_dataset")
    (folder / "input.txt").write_text(shakespeare_text[:60_000], encoding="utf-8")
    load_script("text").main(
        [
            "--input",
            str(folder / "input.txt"),
            "--out_dir",
            str(folder / "data"),
            "--vocab_size",
            str(VOCAB),
            "--num_proc",
            "1",
        ]
    )
    return str(folder / "data")


@pytest.mark.slow
def test_train_export_sample_and_import_round_trip(sp_dataset, tmp_path, capsys):
    """A Llama-style model trained on a SentencePiece vocabulary: export.py --llama2c writes
    model.bin and tokenizer.bin; sample.py --init_from=model.bin continues a prompt greedily as
    from the checkpoint, and train.py --init_from=model.bin evaluates to the same val loss."""
    out = tmp_path / "out"
    settings = dict(data_dir=sp_dataset, n_kv_heads=1, **{k: v for k, v in LLAMA.items()})
    final = train.run(tiny_settings(out_dir=str(out), **settings))
    model_bin = tmp_path / "llama2c" / "model.bin"
    code, stdout, stderr = cli(export.main, [f"--out_dir={out}", f"--llama2c={model_bin}"], capsys)
    assert code == 0, stderr
    assert f"./run {model_bin} -z {tmp_path / 'llama2c' / 'tokenizer.bin'}" in stdout
    code, _, stderr = cli(export.main, [f"--out_dir={out}", f"--llama2c={model_bin}"], capsys)  # again: refused
    assert code == 2 and stderr == (
        f"error: llama2c={model_bin}: {model_bin} and {tmp_path / 'llama2c' / 'tokenizer.bin'} already there; "
        f"pass --overwrite=True to replace them, or choose another path\n"
    )
    greedy = ["--temperature=0", "--num_samples=1", "--max_new_tokens=30", "--start=First Citizen", "--device=cpu"]
    from_checkpoint = sample.main([f"--out_dir={out}", *greedy])
    from_bin = sample.main([f"--init_from={model_bin}", f"--tokenizer={sp_dataset}", *greedy])
    from_model_file = sample.main([f"--init_from={model_bin}", f"--tokenizer={sp_dataset}/tok{VOCAB}.model", *greedy])
    assert from_bin == from_model_file == from_checkpoint and from_bin[0].startswith("First Citizen")
    # the prompt starts with BOS, as every training document does
    tokenizer = get_tokenizer(json.load(open(os.path.join(sp_dataset, "meta.json"))), sp_dataset)
    prompt = [tokenizer.bos_id, *tokenizer.encode("First Citizen")]
    ids = load_llama2c(str(model_bin)).generate(torch.tensor([prompt]), 30, temperature=0)[0].tolist()
    assert from_bin == [tokenizer.decode(ids)]
    evaluated = train.run(
        tiny_settings(out_dir=str(tmp_path / "eval"), init_from=str(model_bin), eval_only=True, **settings)
    )
    assert evaluated["val_loss"] == pytest.approx(final["val_loss"], abs=1e-5)


def test_sample_refuses_a_tokenizer_of_another_size(tmp_path, vocabulary, capsys):
    model_bin = tmp_path / "model.bin"
    write_llama2c(tiny(vocab_size=512), str(model_bin))
    model_file = os.path.join(vocabulary[0], vocabulary[1]["model_file"])
    code, _, stderr = cli(sample.main, [f"--init_from={model_bin}", f"--tokenizer={model_file}"], capsys)
    assert code == 2 and f"has {VOCAB} tokens but {model_bin} has vocab_size=512" in stderr


def test_export_script_refuses_a_gpt2_dataset_in_one_line(tmp_path, capsys):
    model = tiny()
    out = tmp_path / "out"
    out.mkdir()
    save_checkpoint(
        out / "ckpt.pt",
        {"model": model.state_dict(), "model_args": model.config.to_dict(), "config": {"data_dir": str(tmp_path)}},
    )
    code, _, stderr = cli(export.main, [f"--out_dir={out}", f"--llama2c={out / 'model.bin'}"], capsys)
    assert code == 2 and stderr.count("\n") == 1
    assert stderr.startswith("error: cannot export for llama2.c's run.c: tokenizer='gpt2' (no meta.json in ")
    assert sorted(os.listdir(out)) == ["ckpt.pt"]
