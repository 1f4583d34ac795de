# Written by plan.py on 2026-12-01: python plan.py --gpu rtx4090 --tokens 10e9 --hours 72 --write config/fineweb_24gb.py
# Target: 1 x GeForce RTX 4090 24GB, 10B tokens of data, 72 hours
# Model: 253,920,256 parameters (16 layers x 1024 wide, 16 heads)
# Predicted peak memory 16.9 GiB per GPU of 20.3 usable (micro-batch 16, bf16, compile): python plan.py config/fineweb_24gb.py --gpu rtx4090 --tokens 1e+10
# 9.97B tokens (1.00 epochs, 39.2 per parameter), 1.71e+19 FLOPs: about 72.0 h at 40% MFU
# Predicted loss 2.91 (Chinchilla fit, approximate). Why this model: lowest predicted loss in 72 h: 10.0B tokens (1.00 epochs of your data, 39 tokens per parameter)
out_dir = "out-fineweb-24gb"
dataset = "fineweb"
n_layer = 16
n_embd = 1024
n_head = 16
bias = False
dropout = 0.0
block_size = 1024
batch_size = 16
gradient_accumulation_steps = 32  # 524,288 tokens per step
activation_checkpointing = 0
learning_rate = 0.00037  # GPT-3's for this size
min_lr = 3.7e-05
warmup_iters = 715
max_iters = 19011
lr_decay_iters = 19011
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
