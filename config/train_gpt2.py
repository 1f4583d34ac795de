# GPT-2 124M at nanoGPT's scale (its config/train_gpt2.py): about 300B tokens on 8 GPUs.
# Needs more text than FineWeb's sample-10BT: python data/fineweb/prepare.py --subset sample-350BT --max_tokens 300e9
# torchrun --standalone --nproc_per_node=8 train.py config/train_gpt2.py
# Model: 124,373,760 parameters (12 layers x 768 wide, 12 heads)
# Predicted peak memory 9.8 GiB (10.4 GiB reserved) per GPU of 36.5 usable (micro-batch 12, bf16, compile): python plan.py config/train_gpt2.py --gpu a100-40 --gpus 8
# Time: 295B tokens, 2.52e+20 FLOPs, about 94 h (3.9 days) on 8 x this GPU at 30% MFU (assumed)
out_dir = "out-gpt2"
dataset = "fineweb"
eval_interval = 1000
eval_iters = 200
log_interval = 10

batch_size = 12
block_size = 1024
gradient_accumulation_steps = 5 * 8  # 491,520 tokens per step over the 8 GPUs

n_layer = 12
n_head = 12
n_embd = 768
bias = False
dropout = 0.0

learning_rate = 6e-4
max_iters = 600000  # 295B tokens
lr_decay_iters = 600000
min_lr = 6e-5
warmup_iters = 2000
weight_decay = 0.1
beta2 = 0.95
grad_clip = 1.0
compile = True
