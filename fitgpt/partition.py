"""
What torch.compile keeps for backward, counted from the compiler itself: AOTAutograd's min-cut
rematerialization partitioner (the one inductor uses) split the joint forward-backward graph of
model.py's GPT, and the forward graph's extra outputs are the tensors saved for backward. Run
on CPU under FakeTensorMode (no memory, no arithmetic: about a second per model), with CPU
autocast standing in for CUDA's, and SDPA's flash kernel kept whole as on a GPU.

memory.py's compiled terms are written as formulas (plan.py imports no torch);
tests/test_memory.py holds them to this count for every block option, as it holds the eager
terms to autograd's saved tensors. docs/sizing.md compares both with H200 measurements.
"""

import math
from dataclasses import dataclass, replace

import torch
from torch._dynamo.backends.common import aot_autograd
from torch._functorch.partitioners import min_cut_rematerialization_partition
from torch._inductor.decomposition import select_decomp_table
from torch._subclasses.fake_tensor import FakeTensorMode

from fitgpt.architecture import GPTConfig
from fitgpt.runtime import DTYPES


@dataclass(frozen=True)
class SavedTensor:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    parameter_copy: bool  # a cast of a weight (e.g. its bf16 copy), not an activation

    @property
    def bytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _decompositions() -> dict:
    """Inductor's decompositions, less the ones that would turn SDPA into explicit softmax
    attention: on a GPU it runs as one (flash or memory-efficient) kernel, keeping only its output
    and log-sum-exp, and its CPU flash kernel keeps the same."""
    return {op: fn for op, fn in select_decomp_table().items() if "scaled_dot_product" not in str(op)}


def saved_tensors(
    config: GPTConfig, batch_size: int, dtype: str = "bf16", *, activation_checkpointing: int = 0, loss_chunks: int = 0
) -> list[SavedTensor]:
    """The tensors torch.compile's partition keeps from forward to backward for one training
    step of GPT(config) with these training choices on (batch_size, block_size) tokens, under
    autocast to dtype."""
    from model import GPT  # here: model.py sits at the repository root, beside this package

    found = []

    def forward_compiler(graph_module, example_inputs):
        # the forward graph returns the user's outputs, then what backward needs
        # the weights and buffers are the floating-point inputs; the token ids are integers
        inputs = [(n.name, n.meta.get("val")) for n in graph_module.graph.nodes if n.op == "placeholder"]
        parameters = {name for name, v in inputs if isinstance(v, torch.Tensor) and v.is_floating_point()}
        output = next(n for n in graph_module.graph.nodes if n.op == "output").args[0]
        for node in output[user_outputs:]:
            value = node.meta.get("val") if hasattr(node, "meta") else None
            if not isinstance(value, torch.Tensor) or node.name in parameters:
                continue  # symbolic sizes, and the weights themselves (always alive)
            copy = _derived_from(node, parameters)
            found.append(SavedTensor(node.name, tuple(value.shape), value.dtype, copy))
        return graph_module.forward

    backend = aot_autograd(
        fw_compiler=forward_compiler,
        bw_compiler=lambda graph_module, example_inputs: graph_module.forward,
        partition_fn=min_cut_rematerialization_partition,
        decompositions=_decompositions(),
    )
    torch._dynamo.reset()
    with FakeTensorMode(allow_non_fake_inputs=True):
        model = GPT(config, activation_checkpointing=activation_checkpointing, loss_chunks=loss_chunks)
        idx = torch.randint(0, config.vocab_size, (batch_size, config.block_size))
        compiled = torch.compile(model, backend=backend, fullgraph=True)
        enabled = dtype != "fp32"
        with torch.autocast("cpu", dtype=DTYPES[dtype] if enabled else torch.bfloat16, enabled=enabled):
            user_outputs = 2  # (logits or None, loss)
            compiled(idx, idx)
    torch._dynamo.reset()
    return found


def _derived_from(node, parameters: set[str]) -> bool:
    """Whether a saved node is computed from parameters alone (a cast or transpose of a weight)."""
    stack, seen = [node], set()
    while stack:
        current = stack.pop()
        if current.name in seen:
            continue
        seen.add(current.name)
        if current.op == "placeholder":
            if current.name not in parameters:
                return False
            continue
        stack.extend(arg for arg in current.all_input_nodes)
    return True


@dataclass(frozen=True)
class CompiledCount:
    """Bytes torch.compile keeps for backward: per token in each block and in the head (the
    embedding, final norm, output layer and loss; with the loss's scalars, a few bytes over all
    tokens), and the weight copies (bf16 casts) per model."""

    layer_per_token: float
    head_per_token: float
    weight_copies: int


def compiled_count(
    config: GPTConfig,
    dtype: str = "bf16",
    block_size: int = 64,
    *,
    activation_checkpointing: int = 0,
    loss_chunks: int = 0,
) -> CompiledCount:
    """Per-token and fixed saved bytes, from two partitions, of one block and of two, on one
    sequence, with these training choices: every saved activation has a token dimension, the
    weight copies do not (a shorter block_size than the config's changes nothing per token)."""
    small = replace(config, block_size=block_size)
    activations, copies = {}, {}
    for layers in (1, 2):
        saved = saved_tensors(
            replace(small, n_layer=layers),
            1,
            dtype,
            activation_checkpointing=activation_checkpointing,
            loss_chunks=loss_chunks,
        )
        activations[layers] = sum(t.bytes for t in saved if not t.parameter_copy) / block_size
        copies[layers] = sum(t.bytes for t in saved if t.parameter_copy)
    layer = activations[2] - activations[1]
    copies_per_layer = copies[2] - copies[1]
    return CompiledCount(
        layer_per_token=layer,
        head_per_token=activations[1] - layer,
        weight_copies=config.n_layer * copies_per_layer + copies[1] - copies_per_layer,
    )
