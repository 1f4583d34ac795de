# Written by plan.py on 2026-12-04: python plan.py --gpu mi300x --tokens 14.6e9 --hours 72 --dataset fineweb_edu --write config/fineweb_mi300x_72h.py
# Target: 1 x Instinct MI300X 192GB, 14.6B tokens of data, 72 hours
# Model: 595,703,680 parameters (22 layers x 1408 wide, 22 heads)
# Predicted peak memory 101.1 GiB (105.8 GiB reserved) per GPU of 181.0 GiB usable (micro-batch 64, bf16, compile): python plan.py config/fineweb_mi300x_72h.py --gpu mi300x --tokens 1.46e+10
# 13.7B tokens (0.94 epochs, 23.1 per parameter), 5.42e+19 FLOPs: about 72.0 h at 16% MFU (assumed: a 2024 ROCm report put compiled GPT-2 XL training on one MI300X at about 16 % of peak)
# Predicted loss 2.65 (Besiroglu et al. 2024's refit of Chinchilla, approximate). Why this model: the lowest predicted loss for 72 h: 13.7B tokens (0.94 epochs of your data, 23 per parameter), 72.0 h at 16% MFU, assumed
out_dir = "out-fineweb-mi300x-72h"
dataset = "fineweb_edu"
n_layer = 22
n_embd = 1408
n_head = 22
bias = False
dropout = 0.0
block_size = 1024
batch_size = 64
gradient_accumulation_steps = 8  # 524,288 tokens per step
activation_checkpointing = 0
parallelism = "ddp"  # under torchrun
learning_rate = 0.00026  # GPT-3's for this size
min_lr = 2.6e-05
warmup_iters = 715
max_iters = 26209
lr_decay_iters = 26209
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
