#!/usr/bin/python3
"""PyTorch reference for bench/train.ts: the same small CNN and CNN14 (see stages/lib/tf/models.ts),
AdamW, MSE-free CCC-free plain mean loss on the outputs (the loss does not change the step's cost
meaningfully). Prints JSON: ms per train step and per inference, median over the timed steps.
Usage: train_torch.py THREADS SMALL_BATCH CNN14_BATCH STEPS [cpu|cuda]"""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_nets import Backbone

threads, small_b, big_b, steps = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
device = sys.argv[5] if len(sys.argv) > 5 else 'cpu'
sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
# Strict fp32 (cuDNN would use TF32 for convolutions by default), to compare like with like.
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
torch.set_num_threads(threads)
torch.manual_seed(0)


class Net(nn.Module):
    def __init__(self, channels, double, mels=64, emb=128, pool_last=True):
        super().__init__()
        self.backbone = Backbone(channels, double, mels, pool_last)
        self.fc1 = nn.Linear(self.backbone.width, emb)
        self.out = nn.Linear(emb, 10)

    def forward(self, x):  # x: [b, 1, frames, mels]
        return self.out(F.relu(self.fc1(self.backbone(x))))


def bench(model, batch, frames):
    x = torch.randn(batch, 1, frames, 64, device=device).to(memory_format=torch.channels_last)
    model = model.to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = model(x).mean()
        loss.backward()
        opt.step()
        sync()
        if i:
            times.append(time.perf_counter() - t0)
    model.eval()
    with torch.no_grad():
        model(x)
        sync()
        t0 = time.perf_counter()
        for _ in range(3):
            model(x)
        sync()
        infer = (time.perf_counter() - t0) / 3
    return dict(step_ms=1000 * sorted(times)[len(times) // 2], infer_ms=1000 * infer,
                params=sum(p.numel() for p in model.parameters()))


small = bench(Net([16, 32, 64, 128], False), small_b, 256)
big = bench(Net([64, 128, 256, 512, 1024, 2048], True, emb=2048, pool_last=False), big_b, 304)
print(json.dumps(dict(torch=torch.__version__, device=(torch.cuda.get_device_name() if device == 'cuda' else 'cpu'), threads=threads, small=small, cnn14=big)))
