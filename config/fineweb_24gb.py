# Written by plan.py on 2026-12-04: python plan.py --gpu rtx4090 --tokens 10e9 --hours 72 --write config/fineweb_24gb.py
# Target: 1 x GeForce RTX 4090 24GB, 10B tokens of data, 72 hours
# Model: 345,826,944 parameters (18 layers x 1152 wide, 18 heads)
# Predicted peak memory 14.4 GiB (15.1 GiB reserved) per GPU of 21.5 GiB usable (micro-batch 8, bf16, compile): python plan.py config/fineweb_24gb.py --gpu rtx4090 --tokens 1e+10
# 7.37B tokens (0.74 epochs, 21.3 per parameter), 1.71e+19 FLOPs: about 72.0 h at 40% MFU (assumed for Ada GPUs: a nanoGPT user's GPT-2 124M ran at about 90 TFLOP/s on one RTX 4090 (55 % of its 165), taken lower)
# Predicted loss 2.85 (Besiroglu et al. 2024's refit of Chinchilla, approximate). Why this model: the lowest predicted loss for 72 h: 7.37B tokens (0.74 epochs of your data, 21 per parameter), 72.0 h at 40% MFU, assumed
out_dir = "out-fineweb-24gb"
dataset = "fineweb"
n_layer = 18
n_embd = 1152
n_head = 18
bias = False
dropout = 0.0
block_size = 1024
batch_size = 8
gradient_accumulation_steps = 64  # 524,288 tokens per step
activation_checkpointing = 0
parallelism = "ddp"  # under torchrun
learning_rate = 0.0003  # GPT-3's for this size
min_lr = 3e-05
warmup_iters = 715
max_iters = 14066
lr_decay_iters = 14066
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
