"""
Hugging Face interop: the one place that knows transformers' layouts.

    export_hf(model, "out/hf")    our GPT -> a folder AutoModelForCausalLM.from_pretrained reads
    model, model_args = load_hf("gpt2")  # or a local folder: GPT-2 or Llama -> our GPT

Two architectures compute exactly what a GPTConfig does:
- GPT2LMHeadModel: pos_emb='learned', norm='layernorm', mlp='gelu', n_kv_heads == n_head. GPT-2
  stores Linear weights as Conv1D, i.e. transposed (in, out). It always has biases, so a
  bias=False model is written with zero biases, which computes the same function.
- LlamaForCausalLM: pos_emb='rope', norm='rmsnorm', mlp='swiglu'. Our RoPE already uses Llama's
  rotate-half layout, so q and k weights are copied as they are; our fused c_attn rows
  [q (H*D) | k (K*D) | v (K*D)] split into q_proj, k_proj, v_proj.
Our embedding and output layer are padded to a multiple of 64 rows (GPTConfig.padded_vocab_size);
transformers gets the vocab_size real rows, and the padding rows come back as zeros on import.
"""

import os

import torch

from fitgpt.architecture import GPTConfig
from fitgpt.downloads import hub_host, hub_offline, unreachable
from fitgpt.errors import ConfigError, first_line
from model import GPT

# GPT-2 modules that are Conv1D in transformers: their weights are stored as (in, out)
CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# our name fragment -> Llama's, applied in order (the fused c_attn is split separately)
LLAMA_RENAMES = (
    ("transformer.wte.", "model.embed_tokens."),
    ("transformer.ln_f.", "model.norm."),
    ("transformer.h.", "model.layers."),
    (".ln_1.", ".input_layernorm."),
    (".ln_2.", ".post_attention_layernorm."),
    (".attn.c_proj.", ".self_attn.o_proj."),
    (".mlp.c_gate.", ".mlp.gate_proj."),
    (".mlp.c_fc.", ".mlp.up_proj."),
    (".mlp.c_proj.", ".mlp.down_proj."),
)


# GPTConfig attribute -> the same quantity in transformers' GPT2Config and in its LlamaConfig
HF_FIELDS = (
    ("vocab_size", "vocab_size", "vocab_size"),
    ("block_size", "n_positions", "max_position_embeddings"),
    ("n_embd", "n_embd", "hidden_size"),
    ("n_layer", "n_layer", "num_hidden_layers"),
    ("n_head", "n_head", "num_attention_heads"),
    ("hidden_dim", "n_inner", "intermediate_size"),  # GPTConfig's mlp_hidden when imported
    ("norm_eps", "layer_norm_epsilon", "rms_norm_eps"),
    ("tie_embeddings", "tie_word_embeddings", "tie_word_embeddings"),
)


def hf_fields(family: str) -> dict[str, str]:
    """{our attribute: transformers' field} for 'gpt2' or 'llama'."""
    column = 1 if family == "gpt2" else 2
    return {row[0]: row[column] for row in HF_FIELDS}


def import_transformers():  # -> the transformers module
    """transformers, which must be version 5 or later: older ones read Llama's rope_parameters differently."""
    import transformers

    if int(transformers.__version__.split(".")[0]) < 5:
        raise ConfigError(
            f"hf.py needs transformers >= 5, found {transformers.__version__}; run pip install -U transformers"
        )
    return transformers


def llama_name(name: str) -> str:
    """Llama's name for one of our parameters (for c_attn, a name still to split into q, k, v)."""
    for ours, theirs in LLAMA_RENAMES:
        name = name.replace(ours, theirs)
    return name


def hf_architecture(config: GPTConfig) -> str:
    """'gpt2' or 'llama': the transformers architecture that computes what config does.
    Raises ConfigError naming every option it cannot represent."""
    family, needs = (
        ("gpt2", dict(norm="layernorm", mlp="gelu"))
        if config.pos_emb == "learned"
        else ("llama", dict(norm="rmsnorm", mlp="swiglu"))
    )
    problems = [
        f"{k}={getattr(config, k)!r} (pos_emb={config.pos_emb!r} exports as {family}, which needs {k}={v!r})"
        for k, v in needs.items()
        if getattr(config, k) != v
    ]
    if config.qk_norm:
        problems.append("qk_norm=True (neither GPT-2 nor Llama normalizes queries and keys)")
    if config.logit_softcap:
        problems.append(f"logit_softcap={config.logit_softcap} (neither GPT-2 nor Llama caps the logits)")
    if family == "gpt2" and config.n_kv_heads != config.n_head:
        problems.append(
            f"n_kv_heads={config.n_kv_heads} (GPT-2 has no grouped-query attention; needs n_head={config.n_head})"
        )
    if problems:
        raise ConfigError(f"cannot export to Hugging Face: {'; '.join(problems)}")
    return family


def to_hf(model: GPT, eos_token_id: int | None = None) -> tuple[object, dict]:
    """(transformers config, state dict with HF names) for our GPT; a tied lm_head is left out, since
    transformers ties it again on load. eos_token_id: the end-of-text token, if the tokenizer has one."""
    transformers = import_transformers()
    c = model.config
    family = hf_architecture(c)
    ours = {k: v.detach() for k, v in model.state_dict().items()}
    for name in ("transformer.wte.weight", "lm_head.weight"):
        ours[name] = ours[name][: c.vocab_size]  # without the padding rows
    if c.tie_embeddings:
        del ours["lm_head.weight"]
    dtype = ours["transformer.wte.weight"].dtype
    common = {theirs: getattr(c, name) for name, theirs in hf_fields(family).items()}
    common.update(dtype=dtype, bos_token_id=eos_token_id, eos_token_id=eos_token_id)  # GPT-2: <|endoftext|> for both
    if family == "gpt2":
        hf_config = transformers.GPT2Config(
            **common,
            activation_function="gelu_new",  # gelu_new is the tanh approximation
            resid_pdrop=c.dropout,
            embd_pdrop=c.dropout,
            attn_pdrop=c.dropout,
            architectures=["GPT2LMHeadModel"],
        )
        state_dict = {k: v.t() if k.endswith(CONV1D) else v for k, v in ours.items()}
        if not c.bias:  # GPT-2 always has biases; zeros compute the same function
            for k, v in ours.items():
                if k.endswith(".weight") and (".h." in k or k.startswith("transformer.ln_f.")):
                    state_dict[k[: -len("weight")] + "bias"] = torch.zeros(v.size(0), dtype=v.dtype)
    else:
        rope = {"rope_type": "default", "rope_theta": c.rope_theta}
        hf_config = transformers.LlamaConfig(
            **common,
            num_key_value_heads=c.n_kv_heads,
            head_dim=c.head_dim,
            hidden_act="silu",
            rope_parameters=rope,
            attention_bias=c.bias,
            mlp_bias=c.bias,
            attention_dropout=c.dropout,
            architectures=["LlamaForCausalLM"],
        )
        sizes = [c.n_head * c.head_dim, c.n_kv_heads * c.head_dim, c.n_kv_heads * c.head_dim]
        state_dict = {}
        for k, v in ours.items():
            name = llama_name(k)
            if ".attn.c_attn." in name:  # (H*D + 2*K*D, C) -> q (H*D, C), k (K*D, C), v (K*D, C)
                for proj, part in zip(("q_proj", "k_proj", "v_proj"), v.split(sizes)):
                    state_dict[name.replace(".attn.c_attn.", f".self_attn.{proj}.")] = part
            else:
                state_dict[name] = v
    # safetensors wants contiguous tensors (the transposed ones are not)
    return hf_config, {k: v.contiguous().cpu() for k, v in state_dict.items()}


def export_hf(model: GPT, hf_dir: str | os.PathLike, eos_token_id: int | None = None) -> str:
    """Write hf_dir/config.json and hf_dir/model.safetensors; returns the architecture name."""
    from safetensors.torch import save_file

    hf_config, state_dict = to_hf(model, eos_token_id)
    os.makedirs(hf_dir, exist_ok=True)
    hf_config.save_pretrained(hf_dir)
    save_file(state_dict, os.path.join(hf_dir, "model.safetensors"), metadata={"format": "pt"})
    return hf_config.architectures[0]


def config_from_hf(hf, name: str, block_size: int | None = None, dropout: float = 0.0) -> GPTConfig:
    """GPTConfig for a transformers GPT2Config or LlamaConfig; ConfigError for what we cannot compute."""
    problems = []
    if hf.model_type == "gpt2":
        if hf.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            problems.append(f"activation_function={hf.activation_function!r} (needs the tanh GELU, 'gelu_new')")
        if not hf.scale_attn_weights or hf.scale_attn_by_inverse_layer_idx or hf.add_cross_attention:
            problems.append(
                "non-standard attention (scale_attn_weights, scale_attn_by_inverse_layer_idx or add_cross_attention)"
            )
        args = dict(bias=True)
    elif hf.model_type == "llama":
        rope = hf.rope_parameters or {}
        if rope.get("rope_type", "default") != "default":
            problems.append(f"rope_type={rope['rope_type']!r} (only plain RoPE, 'default', is supported)")
        if hf.hidden_act != "silu":
            problems.append(f"hidden_act={hf.hidden_act!r} (SwiGLU needs 'silu')")
        if hf.head_dim * hf.num_attention_heads != hf.hidden_size:
            problems.append(f"head_dim={hf.head_dim} (must be hidden_size / num_attention_heads)")
        if hf.attention_bias != hf.mlp_bias:
            problems.append(f"attention_bias={hf.attention_bias} with mlp_bias={hf.mlp_bias} (must be equal)")
        args = dict(
            n_kv_heads=hf.num_key_value_heads,
            bias=hf.attention_bias,
            pos_emb="rope",
            norm="rmsnorm",
            mlp="swiglu",
            rope_theta=rope.get("rope_theta", 10000.0),
        )
    else:
        raise ConfigError(f"{name}: model_type {hf.model_type!r} is not supported; load_hf reads 'gpt2' and 'llama'")
    for ours, theirs in hf_fields(hf.model_type).items():
        args["mlp_hidden" if ours == "hidden_dim" else ours] = getattr(hf, theirs)
    if block_size is not None:
        if args.get("pos_emb") != "rope" and block_size > args["block_size"]:
            problems.append(f"block_size={block_size} (its learned position embeddings stop at {args['block_size']})")
        args["block_size"] = block_size
    if problems:
        raise ConfigError(f"{name}: cannot load into GPT: {'; '.join(problems)}")
    return GPTConfig(**args, dropout=dropout)


def load_hf(name_or_path: str, block_size: int | None = None, dropout: float = 0.0) -> tuple[GPT, dict]:
    """Our GPT from a Hugging Face GPT-2 or Llama model: a local folder, or a Hub name such as 'gpt2',
    'gpt2-medium', 'gpt2-large', 'gpt2-xl' (downloaded, or read from the local cache: with
    HF_HUB_OFFLINE=1 or the Hub unreachable, only the cache is asked, so offline it fails at once).
    block_size crops the context (GPT-2's position embeddings are sliced); dropout is for fine-tuning.
    Returns (model, model_args), model_args being the GPTConfig fields."""
    transformers = import_transformers()
    local = os.path.isdir(name_or_path)
    why_offline = "HF_HUB_OFFLINE is set" if hub_offline() else None
    if not local and why_offline is None:  # transformers would retry an unreachable Hub for ~20 s
        reason = unreachable(hub_host())
        why_offline = reason and f"{hub_host()} is unreachable ({reason})"
    offline = local or why_offline is not None
    try:
        hf_config = transformers.AutoConfig.from_pretrained(name_or_path, local_files_only=offline)
    except (OSError, ValueError) as e:
        if local:
            raise ConfigError(f"{name_or_path}: not a Hugging Face model folder ({first_line(e)})") from None
        raise ConfigError(
            f"Hugging Face model '{name_or_path}' is not a local folder and is not in the Hugging Face "
            f"cache{f' ({why_offline})' if why_offline else ''}; download it first with network access "
            f"(python -c \"import transformers; transformers.AutoModelForCausalLM.from_pretrained('{name_or_path}')\") "
            f"or pass a folder holding config.json and the weights"
        ) from None
    config = config_from_hf(hf_config, name_or_path, block_size, dropout)
    try:
        hf_model = transformers.AutoModelForCausalLM.from_pretrained(
            name_or_path, config=hf_config, dtype=torch.float32, local_files_only=offline
        )
    except OSError as e:
        raise ConfigError(f"{name_or_path}: cannot read its weights ({first_line(e)})") from None
    theirs = hf_model.state_dict()
    model = GPT(config)
    if hf_config.model_type == "gpt2":
        # same names as ours; Conv1D weights are (in, out)
        state_dict = {k: theirs[k].t() if k.endswith(CONV1D) else theirs[k] for k in model.state_dict() if k in theirs}
        state_dict["transformer.wpe.weight"] = state_dict["transformer.wpe.weight"][: config.block_size]
    else:
        state_dict = {}
        for k in model.state_dict():
            name = llama_name(k)
            if ".attn.c_attn." in name:  # q (H*D, C), k (K*D, C), v (K*D, C) -> (H*D + 2*K*D, C)
                state_dict[k] = torch.cat(
                    [theirs[name.replace(".attn.c_attn.", f".self_attn.{p}.")] for p in ("q_proj", "k_proj", "v_proj")]
                )
            elif name in theirs:
                state_dict[k] = theirs[name]
    for name in ("transformer.wte.weight", "lm_head.weight"):
        if name in state_dict:  # zero padding rows up to the padded vocabulary
            rows = state_dict[name]
            state_dict[name] = torch.cat([rows, rows.new_zeros(config.padded_vocab_size - len(rows), rows.size(1))])
    if config.tie_embeddings:
        state_dict["lm_head.weight"] = state_dict["transformer.wte.weight"]
    model.load_state_dict(state_dict)
    return model, {name: getattr(config, name) for name in GPTConfig.field_names()}
