# The widely shared "GPT-2 3B on one MI300X" recipe, fitted to the GPU: 48 layers x 2560 wide, 32 heads.
# It has 3.9B parameters, not 3B; its micro-batch of 32 would need ~218 GiB (~228 reserved), more than the 192 GB card
# holds, so it runs 16 sequences x 128 micro-steps (the same 2M tokens per step). At the 16 % MFU assumed
# for the MI300X it takes ~33 days (~13 even at the 40 % fitgpt measured on an H100), not the "2-3 days"
# promised with it.
# python data/fineweb/prepare.py --dataset fineweb-edu --subset sample-100BT --max_tokens 14.6e9
# python train.py config/fineweb_3b_mi300x.py
# Model: 3,906,521,600 parameters (48 layers x 2560 wide, 32 heads)
# Predicted peak memory 141.9 GiB (148.3 GiB reserved) per GPU of 181.0 usable (micro-batch 16, bf16, compile): python plan.py config/fineweb_3b_mi300x.py --gpu mi300x --tokens 14.6e9
# Time: 24.1B tokens, 6.01e+20 FLOPs, about 798 h (33.3 days) on this GPU at 16% MFU (assumed)
out_dir = "out-fineweb-3b-mi300x"
dataset = "fineweb_edu"
eval_interval = 250
eval_iters = 20
log_interval = 10
keep_last = 2

batch_size = 16
block_size = 1024
gradient_accumulation_steps = 128  # 2,097,152 tokens per step

n_layer = 48
n_head = 32
n_embd = 2560
bias = False
dropout = 0.0

learning_rate = 3e-4
max_iters = 11500  # 24.1B tokens
lr_decay_iters = 11500
min_lr = 3e-5
warmup_iters = 2000
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
