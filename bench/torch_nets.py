"""The PANNs-style backbones of stages/lib/tf/models.ts in PyTorch, shared by the PyTorch references
(train_torch.py, twin_torch.py): bn0 over mel bins, conv blocks (3x3 convolutions without bias,
BatchNorm, ReLU, 2x2 average pooling), then the PANNs head (mean over mels, max + mean over time)."""
import torch.nn as nn


class Backbone(nn.Module):
    def __init__(self, channels, double, mels=64, pool_last=True):
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
        self.width = cin

    def forward(self, x):  # x: [b, 1, frames, mels] -> [b, width]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.blocks(x).mean(dim=3)
        return x.max(dim=2).values + x.mean(dim=2)
