# GPT-2 124M on FineWeb's sample-10BT (10B tokens, one epoch), build-nanogpt's and llm.c's run, on a 12 GB card.
# python data/fineweb/prepare.py && python train.py config/train_fineweb.py
# Model: 124,373,760 parameters (12 layers x 768 wide, 12 heads)
# Predicted peak memory 7.3 GiB (7.7 GiB reserved) per GPU of 10.1 usable (micro-batch 8, bf16, compile): python plan.py config/train_fineweb.py --gpu rtx4070
# Time: 10B tokens, 8.55e+18 FLOPs, about 102 h (4.2 days) on this GPU at 40% MFU (assumed for Ada GPUs)
out_dir = "out-fineweb"
dataset = "fineweb"
eval_interval = 250
eval_iters = 20
log_interval = 10

batch_size = 8
block_size = 1024
gradient_accumulation_steps = 64  # 524,288 tokens per step

n_layer = 12
n_head = 12
n_embd = 768
bias = False
dropout = 0.0

learning_rate = 6e-4
max_iters = 19073  # 10.0B tokens
lr_decay_iters = 19073
min_lr = 6e-5
warmup_iters = 715  # 375M tokens, as GPT-3
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
