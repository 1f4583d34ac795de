# Written by plan.py on 2026-12-01: python plan.py --gpu h100 --tokens 10e9 --hours 72 --write config/fineweb_80gb.py
# Target: 1 x H100 SXM 80GB, 10B tokens of data, 72 hours
# Model: 773,582,080 parameters (36 layers x 1280 wide, 20 heads)
# Predicted peak memory 43.2 GiB per GPU of 70.4 usable (micro-batch 16, bf16, compile): python plan.py config/fineweb_80gb.py --gpu h100 --tokens 1e+10
# 19.7B tokens (1.97 epochs, 25.5 per parameter), 1.03e+20 FLOPs: about 72.0 h at 40% MFU
# Predicted loss 2.62 (Chinchilla fit, approximate). Why this model: lowest predicted loss in 72 h: 19.7B tokens (1.97 epochs of your data, 26 tokens per parameter)
out_dir = "out-fineweb-80gb"
dataset = "fineweb"
n_layer = 36
n_embd = 1280
n_head = 20
bias = False
dropout = 0.0
block_size = 1024
batch_size = 16
gradient_accumulation_steps = 32  # 524,288 tokens per step
activation_checkpointing = 0
learning_rate = 0.00025  # GPT-3's for this size
min_lr = 2.5e-05
warmup_iters = 715
max_iters = 37631
lr_decay_iters = 37631
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
