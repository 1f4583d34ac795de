# Written by plan.py on 2026-12-01: python plan.py --gpu rtx4070 --tokens 10e9 --hours 72 --write config/fineweb_12gb.py
# Target: 1 x GeForce RTX 4070 12GB, 10B tokens of data, 72 hours
# Model: 124,373,760 parameters (12 layers x 768 wide, 12 heads)
# Predicted peak memory 6.4 GiB per GPU of 9.5 usable (micro-batch 8, bf16, compile): python plan.py config/fineweb_12gb.py --gpu rtx4070 --tokens 1e+10
# 7.07B tokens (0.71 epochs, 56.9 per parameter), 6.04e+18 FLOPs: about 72.0 h at 40% MFU
# Predicted loss 3.13 (Chinchilla fit, approximate). Why this model: lowest predicted loss in 72 h: 7.1B tokens (0.71 epochs of your data, 57 tokens per parameter)
out_dir = "out-fineweb-12gb"
dataset = "fineweb"
n_layer = 12
n_embd = 768
n_head = 12
bias = False
dropout = 0.0
block_size = 1024
batch_size = 8
gradient_accumulation_steps = 64  # 524,288 tokens per step
activation_checkpointing = 0
learning_rate = 0.0006  # GPT-3's for this size
min_lr = 6e-05
warmup_iters = 715
max_iters = 13489
lr_decay_iters = 13489
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
