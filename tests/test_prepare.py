import glob
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sentencepiece

import train
from conftest import ROOT, cli, load_script, run_script
from fitgpt import corpus, downloads
from fitgpt.errors import FitGPTError
from fitgpt.shards import open_tokens, read_header, read_meta
from fitgpt.tokenization import get_tokenizer, train_sentencepiece

EOT = 50256
SHARD = 5000


def shard_files(folder):
    """{file name: bytes} of a folder's shards."""
    return {p.name: p.read_bytes() for p in map(Path, glob.glob(os.path.join(folder, "*_*_*.bin")))}


def shard_paths(folder):
    """A folder's shards in index order (val first, then train), numbered without gaps."""
    paths = sorted(glob.glob(os.path.join(folder, "*_*_*.bin")), key=lambda p: int(p[-10:-4]))
    assert [int(p[-10:-4]) for p in paths] == list(range(len(paths)))
    return paths


def token_stream(folder):
    return np.concatenate([open_tokens(p) for p in shard_paths(folder)])


def split_documents(tokens, delimiter):
    """The token lists of the documents in a stream where each one starts with the delimiter."""
    assert tokens[0] == delimiter
    return [doc[1:].tolist() for doc in np.split(tokens, np.flatnonzero(tokens == delimiter))[1:]]


@pytest.fixture(scope="module")
def docs(shakespeare_text):
    """Passages of 100-3000 characters, one of 40,000 (longer than two shards), an empty one
    and one with special-token text and non-ASCII characters."""
    rng = random.Random(0)
    out = []
    for _ in range(60):
        n = rng.randint(100, 3000)
        start = rng.randrange(len(shakespeare_text) - n)
        out.append(shakespeare_text[start : start + n])
    out[30] = shakespeare_text[:40_000]
    out[10] = ""
    out[20] = "a <|endoftext|> in the text is text; naïve café 😀 ünïcödé\n"
    return out


@pytest.fixture(scope="module", autouse=True)
def small_batches():
    """Worker tasks of a few documents, so that a file is read in several (this process reads the
    files; tests that run a script run it with the real size)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(corpus, "BATCH_BYTES", 10_000)
        yield


@pytest.fixture(scope="module")
def files(docs, tmp_path_factory):
    """The documents as a jsonl file (LF and CRLF line ends; blank lines and a null text, which are
    no documents), a parquet file (an extra column; a null text) and a .txt file."""
    folder = tmp_path_factory.mktemp("corpus")
    jsonl, parquet, txt = folder / "a.jsonl", folder / "b.parquet", folder / "c.txt"
    lines = [json.dumps({"text": d, "id": i}) for i, d in enumerate(docs[:40])]
    lines[5:5] = ["", "  ", json.dumps({"text": None, "id": None})]
    jsonl.write_bytes("".join(line + ("\r\n" if i % 3 else "\n") for i, line in enumerate(lines)).encode())
    texts = docs[40:59]
    texts.insert(3, None)
    pq.write_table(pa.table({"id": list(range(len(texts))), "text": texts}), parquet, row_group_size=7)
    txt.write_text(docs[59], encoding="utf-8")
    return [str(jsonl), str(parquet), str(txt)]


@pytest.fixture(scope="module")
def reference(files, tmp_path_factory, gpt2_encoding):
    """data/text/prepare.py's output for the corpus, uninterrupted."""
    out = tmp_path_factory.mktemp("reference")
    load_script("text").prepare(files, str(out), val_tokens=3000, shard_tokens=SHARD, num_proc=2)
    return str(out)


def test_text_round_trip(docs, reference, gpt2_encoding):
    enc = gpt2_encoding
    names = sorted(shard_files(reference))
    assert names[0] == "text_train_000001.bin" and names[-1] == "text_val_000000.bin"
    sizes = [
        read_header(os.path.join(reference, f"text_{'val' if i == 0 else 'train'}_{i:06d}.bin"))
        for i in range(len(names))
    ]
    assert sizes[0] == 3000 and set(sizes[1:-1]) == {SHARD} and 0 < sizes[-1] <= SHARD
    # the token stream of a straightforward tokenization, document by document
    expected = np.concatenate([[EOT] + enc.encode_ordinary(d) for d in docs])
    np.testing.assert_array_equal(token_stream(reference), expected)
    val_text = enc.decode_bytes([t for t in expected[:3000].tolist() if t != EOT])  # the val split's text
    val_bytes = {"tokens": 3000, "bytes": len(val_text)}
    assert read_meta(reference) == {"tokenizer": "gpt2", "vocab_size": 50257, "eot_id": EOT, "val_bytes": val_bytes}


def test_resume_is_byte_identical(files, reference, tmp_path, capsys, monkeypatch):
    expected = shard_files(reference)
    no_delimiter = [i for i, p in enumerate(shard_paths(reference)) if EOT not in open_tokens(p)]
    assert no_delimiter, "the corpus should have a shard inside one document"
    text = load_script("text")
    real_write = corpus.write_shard
    for keep in range(1, len(expected)):  # resuming in each file, inside worker tasks
        out = tmp_path / f"keep{keep}"
        written = []

        def write_shard(path, tokens, written=written, keep=keep):  # Ctrl-C after the first `keep` shards
            if len(written) == keep:
                raise KeyboardInterrupt
            real_write(path, tokens)
            written.append(path)

        monkeypatch.setattr(corpus, "write_shard", write_shard)
        with pytest.raises(KeyboardInterrupt):
            text.prepare(files, str(out), val_tokens=3000, shard_tokens=SHARD, num_proc=2)
        monkeypatch.setattr(corpus, "write_shard", real_write)
        partial = out / ".partial"  # the interrupted run's complete shards, and no dataset yet
        assert sorted(shard_files(partial)) == sorted(os.path.basename(p) for p in written)
        assert not shard_files(out)
        name = os.path.basename(shard_paths(reference)[keep])  # ...a truncated shard and a temp file
        (partial / name).write_bytes(expected[name][:2000])
        (partial / f"{name}.tmp.12345").write_bytes(expected[name][:3000])
        capsys.readouterr()
        text.prepare(files, str(out), val_tokens=3000, shard_tokens=SHARD, num_proc=2)
        assert f"resuming after {keep} complete shards" in capsys.readouterr().out
        assert shard_files(out) == expected
        assert not glob.glob(str(out / "*.tmp.*")) and not os.path.exists(partial)


def test_max_tokens_then_extend_then_shrink(files, reference, tmp_path, capsys):
    text = load_script("text")
    text.prepare(files, str(tmp_path), val_tokens=3000, shard_tokens=SHARD, max_tokens=12_345, num_proc=2)
    assert [
        read_header(tmp_path / n) for n in ("text_val_000000.bin", "text_train_000001.bin", "text_train_000002.bin")
    ] == [3000, SHARD, 4345]
    assert len(shard_files(tmp_path)) == 3
    np.testing.assert_array_equal(token_stream(tmp_path), token_stream(reference)[:12_345])
    capsys.readouterr()
    text.prepare(files, str(tmp_path), val_tokens=3000, shard_tokens=SHARD, num_proc=2)  # a larger budget
    assert "resuming after 2 complete shards" in capsys.readouterr().out  # the finished dataset's, reused
    assert shard_files(tmp_path) == shard_files(reference)
    text.prepare(files, str(tmp_path), val_tokens=3000, shard_tokens=SHARD, max_tokens=8000, num_proc=2)
    assert sorted(shard_files(tmp_path)) == ["text_train_000001.bin", "text_val_000000.bin"]


def test_fineweb_local_parquet_and_hub_path_agree(docs, tmp_path, monkeypatch, gpt2_encoding):
    datasets = pytest.importorskip("datasets")
    parquet = tmp_path / "fw.parquet"
    pq.write_table(pa.table({"text": docs, "url": [f"u{i}" for i in range(len(docs))]}), parquet, row_group_size=16)
    local = tmp_path / "local"
    run_script(
        "data/fineweb/prepare.py",
        "--local",
        str(parquet),
        "--out_dir",
        str(local),
        "--shard_tokens",
        str(SHARD),
        "--num_proc",
        "2",
    )
    names = sorted(shard_files(local))
    assert names[0] == "fineweb_train_000001.bin" and names[-1] == "fineweb_val_000000.bin"
    assert read_header(local / "fineweb_val_000000.bin") == SHARD
    enc = gpt2_encoding
    assert [enc.decode(d) for d in split_documents(token_stream(local), EOT)] == docs

    # the Hub path, offline: datasets streams the same parquet file in place of HuggingFaceFW/fineweb-edu
    monkeypatch.setattr(downloads, "unreachable", lambda host: None)  # as if huggingface.co answered
    real = datasets.load_dataset
    monkeypatch.setattr(
        datasets,
        "load_dataset",
        lambda repo, name, split, streaming: real(
            "parquet", data_files=[str(parquet)], split=split, streaming=streaming
        ),
    )
    hub = tmp_path / "hub"
    load_script("fineweb").prepare("fineweb-edu", "sample-10BT", out_dir=str(hub), shard_tokens=SHARD, num_proc=2)
    assert shard_files(hub) == {n.replace("fineweb", "fineweb_edu"): b for n, b in shard_files(local).items()}


CRASH = """
import os, runpy, signal, sys
import numpy as np
sys.path.insert(0, {root!r})
from fitgpt import corpus, fsutil, shards

written = []

def write_shard(path, tokens):  # dies half-way through writing the 4th shard, like a kill -9
    if len(written) == 3:
        def half(f):
            f.write(np.zeros(256, "<i4").tobytes() + np.asarray(tokens[:len(tokens) // 2], "<u2").tobytes())
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
        fsutil.atomic_write(path, half)
    shards.write_shard(path, tokens)
    written.append(path)

corpus.write_shard = write_shard
sys.argv = ["prepare.py", *{args!r}]
runpy.run_path(os.path.join({root!r}, "data", "fineweb", "prepare.py"), run_name="__main__")
"""


def living_in_group(pgid):
    """The processes of a process group that are still running (not zombies), from /proc."""
    living = []
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            living.append(int(entry))
    return living


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads process groups from /proc")
def test_killed_prepare_leaves_only_complete_shards(files, tmp_path, gpt2_encoding, capsys):
    args = ["--local", *files, "--out_dir", str(tmp_path / "out"), "--shard_tokens", str(SHARD), "--num_proc", "2"]
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASH.format(root=ROOT, args=args)],
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.wait(timeout=60) == -signal.SIGKILL
        deadline = time.monotonic() + 10
        while living_in_group(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not living_in_group(proc.pid)  # its tokenizer processes ended with it
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    out = tmp_path / "out"
    assert not shard_files(out)  # no dataset until it is complete...
    partial = out / ".partial"
    assert len(glob.glob(str(partial / "*.tmp.*"))) == 1  # ...the shard being written when it died...
    visible = shard_files(partial)
    assert sorted(visible) == ["fineweb_train_000001.bin", "fineweb_train_000002.bin", "fineweb_val_000000.bin"]
    for name in visible:  # ...is not visible: every shard there is complete, and resumes
        assert read_header(partial / name) == SHARD
    code, _, stderr = cli(train.main, [f"--data_dir={out}", f"--out_dir={tmp_path / 'run'}", "--device=cpu"], capsys)
    assert code == 2 and stderr == (
        f"error: {out}: its dataset is not finished (a prepare.py run stopped part-way; its work so far is in "
        f"{partial}); run the same prepare command again to finish it\n"
    )
    run_script("data/fineweb/prepare.py", *args)
    reference = tmp_path / "reference"
    run_script("data/fineweb/prepare.py", *args[:-5], str(reference), *args[-4:])
    assert shard_files(out) == shard_files(reference)
    assert not glob.glob(str(out / "*.tmp.*"))


def test_tinystories_sentencepiece(docs, tmp_path):
    stories = [d.strip() for d in docs if d.strip()][:50]
    data = tmp_path / "data"
    data.mkdir()
    (data / "data00.json").write_text(json.dumps([{"story": s} for s in stories[:10]]), encoding="utf-8")
    (data / "data01.json").write_text(json.dumps([{"story": " " + s + "\n"} for s in stories[10:]]), encoding="utf-8")
    out = tmp_path / "out"
    load_script("tinystories").main(
        [
            "--local",
            str(data / "data*.json"),
            "--vocab_size",
            "400",
            "--out_dir",
            str(out),
            "--shard_tokens",
            str(SHARD),
            "--num_proc",
            "2",
        ]
    )
    meta = read_meta(out)
    val_bytes = meta.pop("val_bytes")  # data00.json's stories, in UTF-8, without the BOS between them
    assert meta == {"tokenizer": "sentencepiece", "model_file": "tok400.model", "vocab_size": 400, "eot_id": 1}
    assert val_bytes["bytes"] == sum(len(s.encode("utf-8")) for s in stories[:10])
    tok = get_tokenizer(meta, str(out))
    assert tok.vocab_size == 400 and tok.eot_id == 1  # BOS separates stories, so sampling stops there
    for s in stories[:5]:
        assert tok.decode(tok.encode(s)) == s
    names = [os.path.basename(p) for p in shard_paths(out)]
    val = [n for n in names if "_val_" in n]
    assert val and names[: len(val)] == val and all("_train_" in n for n in names[len(val) :])
    # data00.json is the validation set (as in llama2.c); every story starts with BOS, stripped
    decoded = [tok.decode(d) for d in split_documents(token_stream(out), meta["eot_id"])]
    assert decoded == stories
    assert os.path.getsize(out / "tok400.model") > 0 and not glob.glob(str(out / "*.tmp*"))


@pytest.fixture(scope="module")
def llama_like_model(docs, tmp_path_factory):
    """(path, bytes) of a 400-piece SentencePiece model named as Llama 2's is, trained on the docs."""
    folder = tmp_path_factory.mktemp("llama")
    path = folder / "tokenizer.model"
    os.replace(train_sentencepiece(docs, 400, str(folder)), path)
    return str(path), path.read_bytes()


def test_text_with_tokenizer_model_reuses_its_ids(docs, files, llama_like_model, tmp_path):
    model_file, model_bytes = llama_like_model
    out = tmp_path / "out"
    args = ["--input", *files, "--out_dir", str(out), "--tokenizer_model", model_file, "--val_tokens", "3000"]
    load_script("text").main([*args, "--shard_tokens", str(SHARD), "--num_proc", "2"])
    sp = sentencepiece.SentencePieceProcessor(model_file=model_file)
    expected = np.concatenate([[sp.bos_id()] + sp.encode(d) for d in docs])  # each document starts with BOS
    np.testing.assert_array_equal(token_stream(out), expected)
    meta = read_meta(out)
    assert meta.pop("val_bytes")["tokens"] == 3000
    assert meta == {"tokenizer": "sentencepiece", "model_file": "tokenizer.model", "vocab_size": 400, "eot_id": 1}
    assert (out / "tokenizer.model").read_bytes() == model_bytes  # the dataset carries its vocabulary
    load_script("text").main([*args, "--shard_tokens", str(SHARD), "--num_proc", "2"])  # a rerun keeps it
    np.testing.assert_array_equal(token_stream(out), expected)

    other = tmp_path / "other" / "tokenizer.model"
    other.parent.mkdir()
    os.replace(train_sentencepiece(docs, 360, str(other.parent)), other)
    load_script("text").main([*args[:-3], str(other), "--val_tokens", "3000"])  # another vocabulary: replaced
    assert (out / "tokenizer.model").read_bytes() == other.read_bytes() and read_meta(out)["vocab_size"] == 360
    with pytest.raises(FitGPTError, match=r"c\.txt: not a SentencePiece model \("):
        load_script("text").main([*args[:-3], files[2], "--out_dir", str(tmp_path / "none")])
    assert not os.path.exists(tmp_path / "none")


def test_tinystories_with_tokenizer_model(docs, llama_like_model, tmp_path):
    stories = [d.strip() for d in docs if d.strip()][:20]
    data = tmp_path / "data"
    data.mkdir()
    for name, part in (("data00.json", stories[:5]), ("data01.json", stories[5:])):
        (data / name).write_text(json.dumps([{"story": s} for s in part]), encoding="utf-8")
    out = tmp_path / "out"
    load_script("tinystories").main(
        ["--local", str(data / "data*.json"), "--tokenizer_model", llama_like_model[0], "--out_dir", str(out)]
    )
    sp = sentencepiece.SentencePieceProcessor(model_file=llama_like_model[0])
    np.testing.assert_array_equal(token_stream(out), np.concatenate([[1] + sp.encode(s) for s in stories]))
    assert read_meta(out)["model_file"] == "tokenizer.model" and os.path.exists(out / "tokenizer.model")


def test_tinystories_gpt2_with_val_files(docs, tmp_path, gpt2_encoding):
    train, val = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    train.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[:30]), encoding="utf-8")
    val.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs[50:]), encoding="utf-8")
    out = tmp_path / "out"
    load_script("tinystories").prepare(
        [str(train)], [str(val)], str(out), shard_tokens=SHARD, num_proc=2, text_field="text"
    )
    enc = gpt2_encoding
    val_tokens = np.concatenate([open_tokens(p) for p in sorted(glob.glob(str(out / "*_val_*.bin")))])
    assert [enc.decode(d) for d in split_documents(val_tokens, EOT)] == [d.strip() for d in docs[50:]]
    everything = [enc.decode(d) for d in split_documents(token_stream(out), EOT)]
    assert everything == [d.strip() for d in docs[50:] + docs[:30]]  # val shards first
    assert read_meta(out)["tokenizer"] == "gpt2"


def test_a_dataset_of_another_tokenizer_is_replaced_whole(files, reference, tmp_path, capsys):
    """A folder holding a GPT-2 dataset, prepared again with a SentencePiece vocabulary: said
    when it starts and when it is done, and no shard of the old one is left to mix in."""
    out = tmp_path / "out"
    out.mkdir()
    for name, data in shard_files(reference).items():
        (out / name.replace("text_", "tinystories_")).write_bytes(data)
    (out / "meta.json").write_text(json.dumps({"tokenizer": "gpt2", "vocab_size": 50257, "eot_id": EOT}))
    old = len(shard_files(out)) + 1
    load_script("tinystories").main(
        [
            *["--local", *files[:1], "--local_val", files[1], "--text_field", "text", "--vocab_size", "400"],
            *["--out_dir", str(out), "--shard_tokens", str(SHARD), "--num_proc", "2"],
        ]
    )
    stdout = capsys.readouterr().out
    assert f"{out} holds a dataset ({old} files): it is replaced once the new one is complete" in stdout
    assert f"replaced the dataset in {out} ({old} files) with the new one" in stdout
    assert read_meta(out)["tokenizer"] == "sentencepiece" and token_stream(out).max() < 400
    assert sorted(os.listdir(out)) == sorted(
        [".job.json", ".lock", "meta.json", "tok400.model", "tok400.vocab", *shard_files(out)]
    )


def test_another_name_in_the_same_folder_replaces_the_dataset(files, tmp_path, capsys, gpt2_encoding):
    """Two datasets never share a folder: the loader would read both."""
    text = load_script("text")
    out = tmp_path / "out"
    text.prepare(files[2:], str(out), name="first", val_tokens=100, shard_tokens=SHARD, num_proc=1)
    text.prepare(files[:1], str(out), name="second", val_tokens=3000, shard_tokens=SHARD, num_proc=1)
    assert {n.split("_")[0] for n in shard_files(out)} == {"second"}
    assert f"replaced the dataset in {out} " in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--input", "nowhere/*.jsonl"], r"nowhere/\*\.jsonl: no such file"),
        (["--input", "{csv}"], r"a\.csv: unsupported file type"),
        (["--input", "{jsonl}", "--text_field", "body"], r"a\.jsonl: line 1 has no 'body' field \(it has text, id\)"),
        (["--input", "{parquet}", "--text_field", "body"], r"b\.parquet: no 'body' column \(it has id, text\)"),
    ],
)
def test_text_errors_are_one_line(files, tmp_path, request, args, message):
    if "{jsonl}" in args:  # found while tokenizing, which loads GPT-2's BPE first
        request.getfixturevalue("gpt2_encoding")
    csv = tmp_path / "a.csv"
    csv.write_text("x")
    args = [a.format(csv=csv, jsonl=files[0], parquet=files[1]) for a in args]
    with pytest.raises(FitGPTError, match=message):
        load_script("text").main([*args, "--out_dir", str(tmp_path / "out"), "--num_proc", "1"])


LATIN1 = "Où est le café? À la crème brûlée.\n".encode("latin-1") * 50
PNG = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8


@pytest.mark.parametrize("script", ["shakespeare_char", "text"])
@pytest.mark.parametrize("kind", ["latin1", "png"])
def test_bad_text_is_one_line_naming_the_file(tmp_path, script, kind):
    """Text in another encoding or a binary file given as text: one line naming the file and the
    line, saying what to do, and no tokenizer-training file (tok*.tmp.txt) left behind."""
    path = tmp_path / "input.txt"
    path.write_bytes(LATIN1 if kind == "latin1" else PNG)
    out = tmp_path / "out"
    with pytest.raises(FitGPTError) as e:
        if script == "shakespeare_char":
            load_script(script).main(["--input", str(path), "--out_dir", str(out)])
        else:  # a vocabulary trained on it: the text is read before anything is tokenized
            load_script(script).main(["--input", str(path), "--out_dir", str(out), "--vocab_size", "300"])
    expected = {
        "latin1": f"{path}: line 1 is not UTF-8 text (byte 0xf9): the file is in another encoding; convert it to "
        f"UTF-8, e.g. iconv -f latin1 -t utf-8 {path} > converted.txt",
        "png": f"{path}: a binary file, not text (a NUL byte on line 3); pass text files (.txt, .jsonl, .json, "
        f".parquet)",
    }[kind]
    assert str(e.value) == expected
    assert not [p for p in glob.glob(str(tmp_path / "**" / "*"), recursive=True) if ".tmp" in p]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "a broken line"', "line 3 is not valid JSON (Expecting ',' delimiter: column 25); fix or remove"),
        ('["a", "list"]', 'line 3 is a JSON list, not an object; each record should be like {"text": "..."}'),
        ('{"text": 42}', "line 3: its 'text' is a JSON int, not text"),
        ('{"text": "caf\xe9"}', "line 3 is not UTF-8 text (byte 0xe9)"),
    ],
)
def test_a_bad_json_line_is_named_by_file_and_line(tmp_path, gpt2_encoding, line, message):
    """Found by a tokenizer process, and reported by the main one, in one line."""
    path = tmp_path / "a.jsonl"
    good = json.dumps({"text": "a good line"})
    path.write_bytes("\n".join([good, good, line, good]).encode("latin-1"))
    with pytest.raises(FitGPTError) as e:
        load_script("text").main(["--input", str(path), "--out_dir", str(tmp_path / "out"), "--num_proc", "2"])
    assert str(e.value).startswith(f"{path}: {message}")


@pytest.mark.parametrize("dataset", ["fineweb", "text", "tinystories", "shakespeare_char"])
def test_a_flag_typed_with_hyphens_is_one_line_naming_the_right_one(dataset, tmp_path, capsys):
    flag, spelled = ("--out-dir", "--out_dir") if dataset == "shakespeare_char" else ("--num-proc", "--num_proc")
    code, stdout, stderr = cli(load_script(dataset).main, ["--input", "x.txt", flag, "2"], capsys)
    assert code == 2 and not stdout
    assert stderr == f"error: unrecognized argument {flag}; did you mean {spelled}?\n"
