#!/usr/bin/python3
"""PyTorch reference for bench/webgpu.ts: the same RRTN twin step as the compiled WebGPU step (both
views through the network, bn0, conv blocks, the PANNs head, fc1, fc_out, a Linear + BatchNorm1d
projector, the pooled CCC loss on both views, the Barlow Twins term on the renormalised projections,
joint weights, AdamW), for the small CNN or CNN14.
Runs as a server so the caller can alternate rounds with its own: reads lines `fp32 K` or `tf32 K`
on stdin, runs K steps with that precision (after the first call's warm-up), and answers one JSON
line {"ms": median ms per step, "min": ..., "max": ...}. The first line it prints describes itself.
Usage: twin_torch.py small|cnn14 BATCH FRAMES [cuda|cpu]"""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch_nets import Backbone

which, batch, frames = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
device = sys.argv[4] if len(sys.argv) > 4 else ('cuda' if torch.cuda.is_available() else 'cpu')
sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
torch.manual_seed(0)
MELS, E = 64, 10


class Net(nn.Module):
    def __init__(self, channels, double, pool_last, projector):
        super().__init__()
        self.backbone = Backbone(channels, double, MELS, pool_last)
        cin = self.backbone.width
        self.fc1 = nn.Linear(cin, cin)
        self.out = nn.Linear(cin, E)
        self.proj = nn.Linear(cin, projector)
        self.proj_bn = nn.BatchNorm1d(projector)

    def forward(self, x):  # x: [b, 1, frames, mels]
        emb = F.relu(self.fc1(self.backbone(x)))
        return self.out(emb), self.proj_bn(self.proj(emb))


def ccc_loss(p, y):
    mp, my = p.mean(), y.mean()
    cov = ((p - mp) * (y - my)).mean()
    return 1 - 2 * cov / (p.var(unbiased=False) + y.var(unbiased=False) + (mp - my) ** 2)


def barlow_twins(z1, z2, lam=0.001):
    n1 = (z1 - z1.mean(0)) / torch.sqrt(z1.var(0, unbiased=False) + 1e-5)
    n2 = (z2 - z2.mean(0)) / torch.sqrt(z2.var(0, unbiased=False) + 1e-5)
    c = n1.T @ n2 / z1.shape[0]
    on = (torch.diagonal(c) - 1).pow(2).sum()
    off = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
    return on + lam * off


if which == 'small':
    net = Net([16, 32, 64, 128], False, True, 128)
else:
    net = Net([64, 128, 256, 512, 1024, 2048], True, False, 2048)
net = net.to(device).to(memory_format=torch.channels_last)
opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
x1 = torch.randn(batch, 1, frames, MELS, device=device).to(memory_format=torch.channels_last)
x2 = torch.randn(batch, 1, frames, MELS, device=device).to(memory_format=torch.channels_last)
y = torch.rand(batch, E, device=device)


def step():
    opt.zero_grad(set_to_none=True)
    o1, z1 = net(x1)
    o2, z2 = net(x2)
    loss = ccc_loss(o1, y) + ccc_loss(o2, y) + 0.001 * barlow_twins(z1, z2)
    loss.backward()
    opt.step()


print(json.dumps(dict(torch=torch.__version__, device=(torch.cuda.get_device_name() if device == 'cuda' else 'cpu'), model=which, batch=batch, frames=frames, params=sum(p.numel() for p in net.parameters()))), flush=True)
warm = False
for line in sys.stdin:
    prec, k = line.split()
    tf32 = prec == 'tf32'
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_tf32 = tf32
    if not warm:
        for _ in range(3):
            step()
        sync()
        warm = True
    times = []
    for _ in range(int(k)):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(1000 * (time.perf_counter() - t0))
    times.sort()
    print(json.dumps(dict(ms=times[len(times) // 2], min=times[0], max=times[-1])), flush=True)
