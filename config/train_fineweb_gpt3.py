# GPT-3 Small's recipe (Brown et al. 2020: 2048-token context, 0.5M tokens per step, lr 6e-4 with
# 375M tokens of warmup, cosine to 10 %) for a 124M model on 10B FineWeb tokens, on an RTX 4070 12 GB.
# python data/fineweb/prepare.py && python train.py config/train_fineweb_gpt3.py
# Model: 125,160,192 parameters (12 layers x 768 wide, 12 heads)
# Predicted peak memory 7.4 GiB (7.7 GiB reserved) per GPU of 10.1 usable (micro-batch 4, bf16, compile): python plan.py config/train_fineweb_gpt3.py --gpu rtx4070
# Time: 10B tokens, 9.68e+18 FLOPs, about 115 h (4.8 days) on this GPU at 40% MFU (assumed for Ada GPUs)
out_dir = "out-fineweb-gpt3"
dataset = "fineweb"
eval_interval = 250
eval_iters = 20
log_interval = 10

batch_size = 4
block_size = 2048
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
warmup_iters = 715
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
