"""HellaSwag scoring against a per-item brute force, on hand-written items in the real file format."""

import json
import os

import pytest
import torch
import torch.nn.functional as F

import evaluate
import train
from conftest import ROOT, cli, run_script, tiny_settings
from fitgpt import hellaswag
from fitgpt.architecture import GPTConfig
from fitgpt.distributed import Distributed
from fitgpt.errors import DataError
from fitgpt.runfiles import read_records
from fitgpt.tokenization import CharTokenizer
from model import GPT

ITEMS = os.path.join(ROOT, "tests", "data", "hellaswag_tiny.jsonl")


@pytest.fixture(scope="module")
def setup():
    items = hellaswag.read_items(ITEMS)
    text = " ".join(item.context + " " + " ".join(item.endings) for item in items)
    tokenizer = CharTokenizer(sorted(set(text)))
    torch.manual_seed(0)
    # block_size 48: the longer items are cut from the left, as the scorer must do
    model = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=48, vocab_size=tokenizer.vocab_size)).eval()
    return items, tokenizer, model


def brute_force(model, items, tokenizer):
    """Each ending scored alone, without padding or batching: (summed log-prob, tokens) per ending."""
    scores = []
    for item in items:
        context = tokenizer.encode(item.context)
        row = []
        for ending in item.endings:
            ending_ids = tokenizer.encode(" " + ending)
            seq = torch.tensor(context + ending_ids)[-(model.config.block_size + 1) :]
            with torch.no_grad():
                logits = model(seq[None, :-1], seq[None, 1:])[0][0]
            logprobs = F.log_softmax(logits, dim=-1)[torch.arange(len(seq) - 1), seq[1:]]
            n = min(len(ending_ids), len(seq) - 1)
            row.append((logprobs[-n:].sum().item(), n))
        scores.append(row)
    return scores


def test_batched_scores_equal_the_brute_force(setup):
    items, tokenizer, model = setup
    encoded = hellaswag.encode_items(items, tokenizer)
    x, y = hellaswag.rows(encoded, model.config.block_size)
    total, count = hellaswag.ending_scores(model, x, y, torch.no_grad())
    reference = brute_force(model, items, tokenizer)
    assert count.tolist() == [n for row in reference for _, n in row]
    assert torch.allclose(total, torch.tensor([s for row in reference for s, _ in row]), atol=1e-4)

    result = hellaswag.evaluate(model, encoded, torch.no_grad(), "cpu", batch_items=2)
    acc_choice = [max(range(4), key=lambda i: row[i][0]) for row in reference]
    norm_choice = [max(range(4), key=lambda i: row[i][0] / row[i][1]) for row in reference]
    labels = [item.label for item in items]
    assert result["acc"] == sum(c == label for c, label in zip(acc_choice, labels)) / len(items)
    assert result["acc_norm"] == sum(c == label for c, label in zip(norm_choice, labels)) / len(items)
    assert result["acc_stderr"] == pytest.approx((result["acc"] * (1 - result["acc"]) / len(items)) ** 0.5)
    # an untrained model gives every token about the same log-probability: the summed score picks
    # the shortest ending (the short distractors), the per-token mean does not
    assert acc_choice == [min(range(4), key=lambda i: len(item.endings[i])) for item in items]
    assert acc_choice != norm_choice and result["acc"] < result["acc_norm"]


def test_ranks_score_disjoint_shares_that_add_up(setup):
    items, tokenizer, model = setup
    encoded = hellaswag.encode_items(items, tokenizer)
    whole = hellaswag.evaluate(model, encoded, torch.no_grad(), "cpu")
    # without a process group each rank's counts are its own share: the shares must add up
    # 5 items over 2 ranks one at a time: rank 1 scores 2 and one spare batch, which must not count
    shares = [
        hellaswag.evaluate(model, encoded, torch.no_grad(), "cpu", dist=Distributed(r, r, 2), batch_items=1)
        for r in (0, 1)
    ]
    for key in ("acc", "acc_norm"):
        assert sum(share[key] for share in shares) == pytest.approx(whole[key])


def test_bad_files_are_named(tmp_path):
    bad = tmp_path / "hs.jsonl"
    bad.write_text(open(ITEMS).readline() + '{"ctx": "x", "endings": ["a", "b"], "label": 0}\n')
    with pytest.raises(DataError, match=r"hs.jsonl:2: a HellaSwag item has 4 endings"):
        hellaswag.read_items(str(bad))
    with pytest.raises(DataError, match=r"hellaswag_file=.*nope.jsonl: no such file"):
        hellaswag.locate(str(tmp_path / "nope.jsonl"))


def test_offline_without_a_copy_says_how_to_supply_one(tmp_path, monkeypatch):
    monkeypatch.setattr(hellaswag, "CACHE", str(tmp_path / "hellaswag_val.jsonl"))
    monkeypatch.setattr("fitgpt.downloads.unreachable", lambda host: "blocked by the test")
    with pytest.raises(DataError, match=r"cannot download .*hellaswag_val.jsonl.*pass hellaswag_file=PATH"):
        hellaswag.locate()


def test_evaluate_py_scores_a_checkpoint_and_logs_it(tmp_path, capsys):
    # a character dataset that covers HellaSwag's characters: the items' own text, repeated
    items = hellaswag.read_items(ITEMS)
    data = tmp_path / "data"
    data.mkdir()
    text = "\n".join(item.context + " " + ending for item in items for ending in item.endings) * 40
    (data / "input.txt").write_text(text)
    run_script("data/shakespeare_char/prepare.py", "--input", str(data / "input.txt"), "--out_dir", str(data))
    out = tmp_path / "run"
    settings = dict(max_iters=10, block_size=64, hellaswag_interval=4, hellaswag_limit=3, hellaswag_file=ITEMS)
    train.run(tiny_settings(data_dir=str(data), out_dir=str(out), **settings))
    scored = [row for row in read_records(str(out / "metrics.jsonl")) if "hellaswag_acc" in row]
    assert [(row["iter"], row["hellaswag_items"]) for row in scored] == [(4, 3), (8, 3), (10, 3)]
    code, stdout, stderr = cli(evaluate.main, [f"--out_dir={out}", f"--hellaswag_file={ITEMS}", "--limit=4"], capsys)
    assert code == 0, stderr
    assert stdout.startswith("hellaswag: 4 items: acc ")
    row = read_records(str(out / "metrics.jsonl"))[-1]
    assert row["iter"] == 10 and row["hellaswag_items"] == 4 and 0 <= row["hellaswag_acc_norm"] <= 1
    assert json.loads(json.dumps(row)) == row
