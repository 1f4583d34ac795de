# Written by plan.py on 2026-12-04: python plan.py --gpu l40s --tokens 10e9 --hours 72 --write config/fineweb_48gb.py
# Target: 1 x L40S 48GB, 10B tokens of data, 72 hours
# Model: 524,239,296 parameters (21 layers x 1344 wide, 21 heads)
# Predicted peak memory 30.1 GiB (31.5 GiB reserved) per GPU of 41.2 GiB usable (micro-batch 16, bf16, compile): python plan.py config/fineweb_48gb.py --gpu l40s --tokens 1e+10
# 10.8B tokens (1.08 epochs, 20.6 per parameter), 3.75e+19 FLOPs: about 72.0 h at 40% MFU (assumed for Ada GPUs: a nanoGPT user's GPT-2 124M ran at about 90 TFLOP/s on one RTX 4090 (55 % of its 165), taken lower)
# Predicted loss 2.71 (Besiroglu et al. 2024's refit of Chinchilla, approximate). Why this model: the lowest predicted loss for 72 h: 10.8B tokens (1.08 epochs of your data, 21 per parameter), 72.0 h at 40% MFU, assumed
out_dir = "out-fineweb-48gb"
dataset = "fineweb"
n_layer = 21
n_embd = 1344
n_head = 21
bias = False
dropout = 0.0
block_size = 1024
batch_size = 16
gradient_accumulation_steps = 32  # 524,288 tokens per step
activation_checkpointing = 0
parallelism = "ddp"  # under torchrun
learning_rate = 0.00027  # GPT-3's for this size
min_lr = 2.7e-05
warmup_iters = 715
max_iters = 20552
lr_decay_iters = 20552
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
