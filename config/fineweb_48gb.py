# Written by plan.py on 2026-12-01: python plan.py --gpu l40s --tokens 10e9 --hours 72 --write config/fineweb_48gb.py
# Target: 1 x L40S 48GB, 10B tokens of data, 72 hours
# Model: 354,599,936 parameters (24 layers x 1024 wide, 16 heads)
# Predicted peak memory 23.4 GiB per GPU of 39.1 usable (micro-batch 16, bf16, compile): python plan.py config/fineweb_48gb.py --gpu l40s --tokens 1e+10
# 15.5B tokens (1.55 epochs, 43.7 per parameter), 3.75e+19 FLOPs: about 72.0 h at 40% MFU
# Predicted loss 2.77 (Chinchilla fit, approximate). Why this model: lowest predicted loss in 72 h: 15.5B tokens (1.55 epochs of your data, 44 tokens per parameter)
out_dir = "out-fineweb-48gb"
dataset = "fineweb"
n_layer = 24
n_embd = 1024
n_head = 16
bias = False
dropout = 0.0
block_size = 1024
batch_size = 16
gradient_accumulation_steps = 32  # 524,288 tokens per step
activation_checkpointing = 0
learning_rate = 0.0003  # GPT-3's for this size
min_lr = 3e-05
warmup_iters = 715
max_iters = 29548
lr_decay_iters = 29548
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
eval_interval = 1000
eval_iters = 50
log_interval = 10
