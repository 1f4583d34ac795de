# config/tinystories_15m.py's shape and parameter budget (6 layers x 288, tied embeddings: an
# untied head would add 9.2M weights) with the small-scale recipe of config/shakespeare_char_fast.py:
# Muon for the blocks' matrices, QK-norm, a ReLU^2 MLP as wide as the SwiGLU one it replaces
# (2 x 288 x 1152 = 3 x 288 x 768 weights), zero-initialized output projections, logit soft-capping.
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
mlp = "relu2"
zero_init_proj = True
logit_softcap = 15.0
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
