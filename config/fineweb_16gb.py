# Written by plan.py on 2026-12-04: python plan.py --gpu rtx4080 --tokens 10e9 --hours 72 --write config/fineweb_16gb.py
# Target: 1 x GeForce RTX 4080 16GB, 10B tokens of data, 72 hours
# Model: 253,920,256 parameters (16 layers x 1024 wide, 16 heads)
# Predicted peak memory 11.6 GiB (12.2 GiB reserved) per GPU of 13.9 GiB usable (micro-batch 8, bf16, compile): python plan.py config/fineweb_16gb.py --gpu rtx4080 --tokens 1e+10
# 5.88B tokens (0.59 epochs, 23.2 per parameter), 1.01e+19 FLOPs: about 72.0 h at 40% MFU (assumed for Ada GPUs: a nanoGPT user's GPT-2 124M ran at about 90 TFLOP/s on one RTX 4090 (55 % of its 165), taken lower)
# Predicted loss 2.95 (Besiroglu et al. 2024's refit of Chinchilla, approximate). Why this model: the lowest predicted loss for 72 h: 5.88B tokens (0.59 epochs of your data, 23 per parameter), 72.0 h at 40% MFU, assumed
out_dir = "out-fineweb-16gb"
dataset = "fineweb"
n_layer = 16
n_embd = 1024
n_head = 16
bias = False
dropout = 0.0
block_size = 1024
batch_size = 8
gradient_accumulation_steps = 64  # 524,288 tokens per step
activation_checkpointing = 0
parallelism = "ddp"  # under torchrun
learning_rate = 0.00037  # GPT-3's for this size
min_lr = 3.7e-05
warmup_iters = 715
max_iters = 11220
lr_decay_iters = 11220
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
