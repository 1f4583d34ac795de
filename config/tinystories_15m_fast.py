# config/tinystories_15m.py's shape and parameter budget (6 layers x 288, SwiGLU, tied embeddings:
# an untied head would add 9.2M weights) with what won on tiny shakespeare (config/shakespeare_char_fast.py,
# docs/benchmarks.md): Muon for the blocks' matrices and QK-norm; the ReLU^2 MLP, zero-initialized
# projections and logit soft-capping did not win there and are left off. Not yet measured on TinyStories.
# Prepare the data as for config/tinystories_15m.py, then: python train.py config/tinystories_15m_fast.py
out_dir = "out-tinystories-15m-fast"
dataset = "tinystories"
eval_interval = 1000
eval_iters = 50
log_interval = 10

batch_size = 128
block_size = 256
gradient_accumulation_steps = 4  # 512 sequences per optimizer step

n_layer = 6
n_head = 6
n_kv_heads = 6
n_embd = 288
pos_emb = "rope"
norm = "rmsnorm"
qk_norm = True
mlp = "swiglu"
multiple_of = 32
bias = False
tie_embeddings = True
dropout = 0.0

optimizer = "muon"
muon_lr = 0.02
learning_rate = 5e-4  # AdamW's, for the embeddings and gains
max_iters = 100000
lr_decay_iters = 100000
min_lr = 0.0
warmup_iters = 1000
weight_decay = 0.1
beta2 = 0.95
