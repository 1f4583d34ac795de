# A ~200M GPT-2 (18 layers x 896 wide, 16 heads) on 4B tokens of FineWeb, on one 12 GB card.
# python data/fineweb/prepare.py --max_tokens 4.1e9 && python train.py config/train_gpt2_200m.py
# Model: 219,431,296 parameters (18 layers x 896 wide, 16 heads)
# Predicted peak memory 7.4 GiB (7.8 GiB reserved) per GPU of 10.1 usable (micro-batch 4, bf16, compile): python plan.py config/train_gpt2_200m.py --gpu rtx4070
# Time: 4B tokens, 6.04e+18 FLOPs, about 72 h (3.0 days) on this GPU at 40% MFU (assumed for Ada GPUs)
out_dir = "out-gpt2-200m"
dataset = "fineweb"
eval_interval = 500
eval_iters = 50
log_interval = 10

batch_size = 4
block_size = 1024
gradient_accumulation_steps = 128  # 524,288 tokens per step

n_layer = 18
n_head = 16
n_embd = 896
bias = False
dropout = 0.0

learning_rate = 4e-4  # GPT-3's rates, interpolated for this size
max_iters = 7630  # 4.0B tokens
lr_decay_iters = 7630
min_lr = 4e-5
warmup_iters = 715
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
