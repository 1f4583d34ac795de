# A small character-level model on tiny shakespeare that trains on a laptop CPU in minutes.
# python train.py config/shakespeare_char.py
out_dir = "out-shakespeare-char"
dataset = "shakespeare_char"
auto_prepare = True
eval_interval = 250
eval_iters = 20
log_interval = 50
always_save_checkpoint = False  # the data is small: keep the checkpoint with the best val loss

gradient_accumulation_steps = 1
batch_size = 12
block_size = 64

# 65 characters: padding the vocabulary to a multiple of 64 (128) would double the output layer
vocab_multiple = 1

n_layer = 4
n_head = 4
n_embd = 128
dropout = 0.0
bias = True

learning_rate = 1e-3
max_iters = 2000
lr_decay_iters = 2000
min_lr = 1e-4
beta2 = 0.99  # the batch is small, so average the second moment over more steps
warmup_iters = 100
weight_decay = 0.1

device = "cpu"
compile = False
