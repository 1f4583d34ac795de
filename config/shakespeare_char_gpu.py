# Character-level tiny shakespeare on one GPU: the classic nanoGPT "baby GPT" (10.7M parameters).
# python train.py config/shakespeare_char_gpu.py
out_dir = "out-shakespeare-char-gpu"
dataset = "shakespeare_char"
auto_prepare = True
eval_interval = 250
eval_iters = 200
log_interval = 10
always_save_checkpoint = False

gradient_accumulation_steps = 1
batch_size = 64
block_size = 256

# 65 characters: padding the vocabulary to a multiple of 64 (128) would double the output layer
vocab_multiple = 1

n_layer = 6
n_head = 6
n_embd = 384
dropout = 0.2
bias = True

learning_rate = 1e-3
max_iters = 5000
lr_decay_iters = 5000
min_lr = 1e-4
beta2 = 0.99
warmup_iters = 100
