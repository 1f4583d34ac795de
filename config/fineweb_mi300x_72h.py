# Written by plan.py on 2026-12-01: python plan.py --gpu mi300x --tokens 14.6e9 --hours 72 --dataset fineweb_edu --write config/fineweb_mi300x_72h.py
# Target: 1 x Instinct MI300X 192GB, 14.6B tokens of data, 72 hours
# Model: 773,582,080 parameters (36 layers x 1280 wide, 20 heads)
# Predicted peak memory 133.2 GiB per GPU of 171.4 usable (micro-batch 64, bf16, compile): python plan.py config/fineweb_mi300x_72h.py --gpu mi300x --tokens 1.46e+10
# 26.1B tokens (1.79 epochs, 33.7 per parameter), 1.36e+20 FLOPs: about 72.0 h at 40% MFU
# Predicted loss 2.58 (Chinchilla fit, approximate). Why this model: lowest predicted loss in 72 h: 26.1B tokens (1.79 epochs of your data, 34 tokens per parameter)
out_dir = "out-fineweb-mi300x-72h"
dataset = "fineweb_edu"
n_layer = 36
n_embd = 1280
n_head = 20
bias = False
dropout = 0.0
block_size = 1024
batch_size = 64
gradient_accumulation_steps = 8  # 524,288 tokens per step
activation_checkpointing = 0
learning_rate = 0.00025  # GPT-3's for this size
min_lr = 2.5e-05
warmup_iters = 715
max_iters = 49726
lr_decay_iters = 49726
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
