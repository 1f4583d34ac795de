# GPT-2 XL's shape (48 layers x 1600 wide, 25 heads) on about 7B FineWeb tokens, on one H200 141 GB.
# python data/fineweb/prepare.py --subset sample-100BT --max_tokens 7.1e9 && python train.py config/train_fineweb1_5b.py
# Model: 1,556,840,000 parameters (48 layers x 1600 wide, 25 heads)
# Predicted peak memory 76.0 GiB (81.5 GiB reserved) per GPU of 131.9 usable (micro-batch 16, bf16, compile): python plan.py config/train_fineweb1_5b.py --gpu h200
# Time: 7B tokens, 7.19e+19 FLOPs, about 45 h (1.9 days) on this GPU at 45% MFU (measured)
out_dir = "out-fineweb-1.5b"
dataset = "fineweb"
eval_interval = 250
eval_iters = 20
log_interval = 10

batch_size = 16
block_size = 1024
gradient_accumulation_steps = 64  # 1,048,576 tokens per step (GPT-3 1.3B's batch)

n_layer = 48
n_head = 25
n_embd = 1600
bias = False
dropout = 0.0

learning_rate = 2e-4  # GPT-3 1.3B's
max_iters = 6676  # 7.0B tokens
lr_decay_iters = 6676
min_lr = 2e-5
warmup_iters = 358  # 375M tokens
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
