# Written by plan.py on 2026-12-04: python plan.py --gpu rtx4070 --tokens 10e9 --hours 72 --write config/fineweb_12gb.py
# Target: 1 x GeForce RTX 4070 12GB, 10B tokens of data, 72 hours
# Model: 180,888,960 parameters (14 layers x 896 wide, 14 heads)
# Predicted peak memory 9.3 GiB (9.7 GiB reserved) per GPU of 10.1 GiB usable (micro-batch 8, bf16, compile): python plan.py config/fineweb_12gb.py --gpu rtx4070 --tokens 1e+10
# 4.9B tokens (0.49 epochs, 27.1 per parameter), 6.04e+18 FLOPs: about 72.0 h at 40% MFU (assumed for Ada GPUs: a nanoGPT user's GPT-2 124M ran at about 90 TFLOP/s on one RTX 4090 (55 % of its 165), taken lower)
# Predicted loss 3.06 (Besiroglu et al. 2024's refit of Chinchilla, approximate). Why this model: the lowest predicted loss for 72 h: 4.9B tokens (0.49 epochs of your data, 27 per parameter), 72.0 h at 40% MFU, assumed
out_dir = "out-fineweb-12gb"
dataset = "fineweb"
n_layer = 14
n_embd = 896
n_head = 14
bias = False
dropout = 0.0
block_size = 1024
batch_size = 8
gradient_accumulation_steps = 64  # 524,288 tokens per step
activation_checkpointing = 0
parallelism = "ddp"  # under torchrun
learning_rate = 0.00047  # GPT-3's for this size
min_lr = 4.7e-05
warmup_iters = 715
max_iters = 9344
lr_decay_iters = 9344
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
