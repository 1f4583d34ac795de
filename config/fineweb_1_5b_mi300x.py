# GPT-2 XL's shape (48 layers x 1600 wide, 25 heads) on one MI300X 192 GB, 2M tokens per step.
# python data/fineweb/prepare.py --dataset fineweb-edu --subset sample-100BT --max_tokens 14.6e9
# python train.py config/fineweb_1_5b_mi300x.py
# Model: 1,556,840,000 parameters (48 layers x 1600 wide, 25 heads)
# Predicted peak memory 125.1 GiB (130.7 GiB reserved) per GPU of 181.0 usable (micro-batch 32, bf16, compile): python plan.py config/fineweb_1_5b_mi300x.py --gpu mi300x --tokens 14.6e9
# Time: 31.5B tokens, 3.23e+20 FLOPs, about 429 h (17.9 days) on this GPU at 16% MFU (assumed)
out_dir = "out-fineweb-1.5b-mi300x"
dataset = "fineweb_edu"
eval_interval = 250
eval_iters = 20
log_interval = 10
keep_last = 2

batch_size = 32
block_size = 1024
gradient_accumulation_steps = 64  # 2,097,152 tokens per step

n_layer = 48
n_head = 25
n_embd = 1600
bias = False
dropout = 0.0

learning_rate = 2e-4
max_iters = 15000  # 31.5B tokens
lr_decay_iters = 15000
min_lr = 2e-5
warmup_iters = 700
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
