# config/shakespeare_char.py's shape (4 layers x 128, 4 heads, block 64, batch 12) with what
# measurably won there (docs/benchmarks.md, benchmarks/recipe_bench.py --ablate): Muon for the
# blocks' matrices, RoPE, RMSNorm, QK-norm, no biases and an untied head: 804,480 parameters
# against the baseline's 809,856 (the head's 65 x 128 added, position embeddings and biases gone).
# Left off, as undoing each one on Muon runs did not make the loss worse on every seed: the ReLU^2
# MLP and zero-initialized output projections (mixed), logit soft-capping (better without, 3 of 3).
# python train.py config/shakespeare_char_fast.py
out_dir = "out-shakespeare-char-fast"
dataset = "shakespeare_char"
auto_prepare = True
eval_interval = 250
eval_iters = 20
log_interval = 50
always_save_checkpoint = False

gradient_accumulation_steps = 1
batch_size = 12
block_size = 64
vocab_multiple = 1

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
bias = False
pos_emb = "rope"
norm = "rmsnorm"
qk_norm = True
mlp = "gelu"
tie_embeddings = False

optimizer = "muon"
muon_lr = 0.01  # the best of the sweep 0.01/0.02/0.04 in docs/benchmarks.md (0.02 was 0.002 nats worse)
learning_rate = 1e-3  # AdamW's, for the embeddings, head and gains
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100
weight_decay = 0.1

device = "cpu"
compile = False
