#!/usr/bin/python3
"""PyTorch reference for bench/train.ts: the same small CNN and CNN14 (see stages/lib/tf/models.ts),
AdamW, MSE-free CCC-free plain mean loss on the outputs (the loss does not change the step's cost
meaningfully). Prints JSON: ms per train step and per inference, median over the timed steps.
Usage: train_torch.py THREADS SMALL_BATCH CNN14_BATCH STEPS [cpu|cuda]"""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

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
        self.bn0 = nn.BatchNorm2d(mels)
        layers, cin = [], 1
        for i, c in enumerate(channels):
            block = [nn.Conv2d(cin, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if double:
                block += [nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
            if pool_last or i < len(channels) - 1:
                block.append(nn.AvgPool2d(2))
            layers.append(nn.Sequential(*block))
            cin = c
        self.blocks = nn.Sequential(*layers)
        self.fc1 = nn.Linear(cin, emb)
        self.out = nn.Linear(emb, 10)

    def forward(self, x):  # x: [b, 1, frames, mels]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.blocks(x)
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        return self.out(F.relu(self.fc1(x)))


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
