# Written by plan.py on 2026-12-04: python plan.py --gpu h100 --tokens 10e9 --hours 72 --write config/fineweb_80gb.py
# Target: 1 x H100 SXM 80GB, 10B tokens of data, 72 hours
# Model: 758,392,320 parameters (24 layers x 1536 wide, 24 heads)
# Predicted peak memory 65.3 GiB (68.2 GiB reserved) per GPU of 74.3 GiB usable (micro-batch 32, bf16, compile): python plan.py config/fineweb_80gb.py --gpu h100 --tokens 1e+10
# 20.5B tokens (2.05 epochs, 27.1 per parameter), 1.03e+20 FLOPs: about 72.0 h at 40% MFU (measured: fitgpt on one H100 SXM, GPT-2 124M to 1.5B compiled, 39-43 % (docs/benchmarks.md))
# Predicted loss 2.57 (Besiroglu et al. 2024's refit of Chinchilla, approximate). Why this model: the lowest predicted loss for 72 h: 20.5B tokens (2.05 epochs of your data, 27 per parameter), 72.0 h at 40% MFU
out_dir = "out-fineweb-80gb"
dataset = "fineweb"
n_layer = 24
n_embd = 1536
n_head = 24
bias = False
dropout = 0.0
block_size = 1024
batch_size = 32
gradient_accumulation_steps = 16  # 524,288 tokens per step
activation_checkpointing = 0
parallelism = "ddp"  # under torchrun
learning_rate = 0.00025  # GPT-3's for this size
min_lr = 2.5e-05
warmup_iters = 715
max_iters = 39182
lr_decay_iters = 39182
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
