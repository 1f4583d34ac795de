import json
import os

import pytest
import torch

import export
import train
from conftest import cli, tiny_settings
from fitgpt.checkpoint import save_checkpoint
from fitgpt.errors import ConfigError
from fitgpt.hf import export_hf, load_hf
from model import GPT, GPTConfig

transformers = pytest.importorskip("transformers")

GPT2_STYLE = dict(pos_emb="learned", norm="layernorm", mlp="gelu")
LLAMA_STYLE = dict(pos_emb="rope", norm="rmsnorm", mlp="swiglu", multiple_of=16)


def tiny(**overrides):
    args = dict(block_size=32, vocab_size=97, n_layer=2, n_head=4, n_embd=32)
    args.update(overrides)
    torch.manual_seed(0)
    model = GPT(GPTConfig(**args)).eval()
    randomize(model)
    return model


def randomize(model):
    """Weights large enough that activations are O(1) (where the exact and tanh GELU differ), and
    random norm gains and biases, so a dropped or misplaced tensor shows in the logits."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0.0, 0.2)
            else:
                p.normal_(1.0 if name.endswith("weight") else 0.0, 0.1)


def our_logits(model, idx):
    with torch.no_grad():
        return model(idx, idx)[0]


def hf_logits(hf_dir, idx):
    hf_model = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        return hf_model(idx).logits, hf_model


@pytest.mark.parametrize(
    "overrides, arch",
    [
        (dict(GPT2_STYLE, bias=True), "GPT2LMHeadModel"),
        (dict(GPT2_STYLE, bias=False, tie_embeddings=False, mlp_hidden=48), "GPT2LMHeadModel"),
        (dict(LLAMA_STYLE, bias=False, n_kv_heads=2, rope_theta=500.0), "LlamaForCausalLM"),
        (dict(LLAMA_STYLE, bias=False, n_kv_heads=1, tie_embeddings=False), "LlamaForCausalLM"),
        (dict(LLAMA_STYLE, bias=True, n_kv_heads=2), "LlamaForCausalLM"),
    ],
)
def test_export_matches_transformers(tmp_path, overrides, arch):
    model = tiny(**overrides)
    assert export_hf(model, tmp_path) == arch
    idx = torch.randint(0, 97, (2, 32))
    theirs, hf_model = hf_logits(tmp_path, idx)
    assert type(hf_model).__name__ == arch
    torch.testing.assert_close(theirs, our_logits(model, idx), atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    "overrides, named",
    [
        (dict(pos_emb="rope", norm="layernorm", mlp="swiglu"), "norm='layernorm'"),
        (dict(pos_emb="learned", mlp="swiglu"), "mlp='swiglu'"),
        (dict(qk_norm=True), "qk_norm=True"),
        (dict(n_kv_heads=2), "n_kv_heads=2"),
    ],
)
def test_export_refuses_unrepresentable(tmp_path, overrides, named):
    with pytest.raises(ConfigError, match="cannot export to Hugging Face") as e:
        export_hf(tiny(**overrides), tmp_path)
    assert named in str(e.value) and "\n" not in str(e.value)
    assert not os.listdir(tmp_path)


def save_tiny_hf(tmp_path, config):
    torch.manual_seed(0)
    hf_model = transformers.AutoModelForCausalLM.from_config(config).eval()
    randomize(hf_model)
    hf_model.save_pretrained(tmp_path)
    return hf_model


LLAMA_TINY = dict(
    vocab_size=97,
    hidden_size=32,
    intermediate_size=40,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=32,
)


@pytest.mark.parametrize("config", [
    transformers.GPT2Config(vocab_size=97, n_positions=32, n_embd=32, n_layer=2, n_head=4, bos_token_id=None,
                            eos_token_id=None),
    transformers.LlamaConfig(**LLAMA_TINY, num_key_value_heads=2,
                             rope_parameters={"rope_type": "default", "rope_theta": 1000.0}),
    transformers.LlamaConfig(**LLAMA_TINY, tie_word_embeddings=True, attention_bias=True, mlp_bias=True),
], ids=["gpt2", "llama-gqa", "llama-tied-bias"])  # fmt: skip
def test_load_hf_matches_transformers(tmp_path, config):
    hf_model = save_tiny_hf(tmp_path, config)
    model, model_args = load_hf(str(tmp_path))
    assert model_args == {name: getattr(model.config, name) for name in GPTConfig.field_names()}
    assert model.config.padded_vocab_size == 128  # 97 real rows from transformers, zero padding
    assert torch.equal(model.transformer.wte.weight[97:], torch.zeros(31, 32))
    idx = torch.randint(0, 97, (2, 32))
    with torch.no_grad():
        theirs = hf_model(idx).logits
    torch.testing.assert_close(our_logits(model.eval(), idx), theirs, atol=1e-5, rtol=0)


def test_round_trip_and_block_size_crop(tmp_path):
    model = tiny(**GPT2_STYLE)
    export_hf(model, tmp_path)
    loaded, model_args = load_hf(str(tmp_path), block_size=16, dropout=0.1)
    assert model_args["block_size"] == 16 and model_args["dropout"] == 0.1
    idx = torch.randint(0, 97, (2, 16))
    torch.testing.assert_close(our_logits(loaded.eval(), idx), our_logits(model, idx))
    with pytest.raises(ConfigError, match="block_size=64"):
        load_hf(str(tmp_path), block_size=64)


def test_load_hf_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        ConfigError, match=r"not in the Hugging Face cache \(HF_HUB_OFFLINE is set\); download it first"
    ):
        load_hf("fitgpt-tests/no-such-model")
    with pytest.raises(ConfigError, match="not a Hugging Face model folder"):
        load_hf(str(tmp_path))
    transformers.GPT2Config(n_layer=1).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="cannot read its weights"):
        load_hf(str(tmp_path))
    transformers.GPT2Config(n_layer=1, activation_function="relu").save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="activation_function='relu'"):
        load_hf(str(tmp_path))


def test_export_script(tmp_path, capsys):
    model = tiny(**LLAMA_STYLE, n_kv_heads=2)
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "meta.json").write_text(json.dumps({"tokenizer": "char", "vocab_size": 97, "chars": []}))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    model_args = {name: getattr(model.config, name) for name in GPTConfig.field_names()}
    save_checkpoint(
        out_dir / "ckpt.pt",
        {"model": model.state_dict(), "model_args": model_args, "config": {"data_dir": str(data_dir)}},
    )
    code, stdout, _ = cli(export.main, [f"--out_dir={out_dir}", f"--hf_dir={tmp_path / 'hf'}"], capsys)
    assert code == 0 and "LlamaForCausalLM" in stdout and "tokenizer: char" in stdout
    assert (tmp_path / "hf" / "meta.json").exists()
    idx = torch.randint(0, 97, (1, 32))
    theirs, _ = hf_logits(tmp_path / "hf", idx)
    torch.testing.assert_close(theirs, our_logits(model, idx), atol=1e-5, rtol=0)

    # a second export into the folder: refused, unless overwrite; a file where the folder should be
    args = [f"--out_dir={out_dir}", f"--hf_dir={tmp_path / 'hf'}"]
    written = {name: (tmp_path / "hf" / name).read_bytes() for name in os.listdir(tmp_path / "hf")}
    code, _, stderr = cli(export.main, args, capsys)
    assert (code, stderr) == (
        2,
        f"error: hf_dir={tmp_path / 'hf'} is not empty (config.json, meta.json, model.safetensors); choose a new "
        f"folder, or pass --overwrite=True to replace an earlier export's files there\n",
    )
    assert {name: (tmp_path / "hf" / name).read_bytes() for name in os.listdir(tmp_path / "hf")} == written
    code, _, _ = cli(export.main, [*args, "--overwrite=True"], capsys)
    assert code == 0
    (tmp_path / "a_file").write_text("not a folder")
    code, _, stderr = cli(export.main, [f"--out_dir={out_dir}", f"--hf_dir={tmp_path / 'a_file'}"], capsys)
    assert (code, stderr) == (
        2,
        f"error: hf_dir={tmp_path / 'a_file'} is a file, not a folder; name a folder for the Hugging Face model\n",
    )

    code, _, stderr = cli(export.main, [f"--out_dir={tmp_path / 'missing'}"], capsys)
    assert code == 2 and stderr.startswith("error: ") and "ckpt.pt" in stderr, stderr
    code, _, stderr = cli(export.main, ["--hf_dri=x"], capsys)
    assert code == 2 and "did you mean hf_dir" in stderr


def test_train_initialises_from_hf_folder(tmp_path, char_dataset):
    """train.py --init_from=<folder>: the run starts from the saved GPT-2's weights (vocab 65 = the char data)."""
    hf_dir = tmp_path / "hf"
    config = transformers.GPT2Config(vocab_size=65, n_positions=64, n_embd=32, n_layer=2, n_head=4)
    torch.manual_seed(0)
    transformers.AutoModelForCausalLM.from_config(config).save_pretrained(hf_dir)
    out = tmp_path / "out"
    train.run(
        tiny_settings(
            init_from=str(hf_dir), data_dir=char_dataset, out_dir=str(out), max_iters=2, eval_interval=2, eval_iters=1
        )
    )
    checkpoint = torch.load(out / "ckpt.pt", weights_only=True)
    assert checkpoint["model_args"]["n_layer"] == 2 and checkpoint["model_args"]["block_size"] == 32
    # a folder exported from a run on another character table (export.py copies meta.json): refused
    chars = [chr(c) for c in range(32, 97)]
    (hf_dir / "meta.json").write_text(json.dumps({"tokenizer": "char", "vocab_size": 65, "chars": chars}))
    with pytest.raises(ConfigError, match=rf"is not the one {hf_dir} was trained with \(char, 65 symbols, table "):
        train.run(tiny_settings(init_from=str(hf_dir), data_dir=char_dataset, out_dir=str(tmp_path / "other")))
    assert checkpoint["model_args"]["vocab_size"] == 65 and checkpoint["model_args"]["bias"] is True
