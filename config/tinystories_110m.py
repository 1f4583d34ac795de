# llama2.c's stories110M architecture on TinyStories: RoPE, RMSNorm, SwiGLU, no biases, tied embeddings.
# Prepare the data first, on Llama 2's vocabulary as llama2.c does (its repository ships tokenizer.model):
#   python data/tinystories/prepare.py --tokenizer_model tokenizer.model
# Then: python train.py config/tinystories_110m.py
out_dir = "out-tinystories-110m"
dataset = "tinystories"
eval_interval = 1000
eval_iters = 50
log_interval = 10

batch_size = 16
block_size = 1024
gradient_accumulation_steps = 32  # 512 sequences per optimizer step

n_layer = 12
n_head = 12
n_kv_heads = 12
n_embd = 768
pos_emb = "rope"
norm = "rmsnorm"
mlp = "swiglu"
multiple_of = 32
bias = False
tie_embeddings = True
dropout = 0.0

learning_rate = 5e-4
max_iters = 100000
lr_decay_iters = 100000
min_lr = 0.0
warmup_iters = 1000
weight_decay = 0.1
beta2 = 0.95
