#!/usr/bin/python3
"""Reference backbones in PyTorch (Debian python3-torch, python3-torchvision), built from the same
description as stages/lib/tf/models.ts (PANNs' CNN6/CNN10/CNN14 layouts, and the small CNN) and, for
the RRTN authors' ResNet14, as their models/vmodels.py builds it: torchvision's ResNet with BasicBlocks
[2, 2, 2, 2], a one-channel 7x7 stem, fc replaced by Identity, a Linear(512, 10) head, input permuted
to (batch, 1, mels, frames). Parameter counts at full size, and, at reduced widths, one forward pass
(eval mode) with random weights and random batch-norm statistics. Writes test/fixtures/models.json
for test/training-models.test.ts."""
import json, os
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

torch.manual_seed(3)
LAYOUT = {'small': (3, 1), 'cnn6': (5, 1), 'cnn10': (3, 2), 'cnn14': (3, 2)}
FULL = {'small': [16, 32, 64, 128], 'cnn6': [64, 128, 256, 512], 'cnn10': [64, 128, 256, 512], 'cnn14': [64, 128, 256, 512, 1024, 2048]}


class Net(nn.Module):
    def __init__(self, backbone, channels, mels, outputs=10):
        super().__init__()
        k, convs = LAYOUT[backbone]
        self.backbone, self.convs = backbone, convs
        self.bn0 = nn.BatchNorm2d(mels)
        self.blocks = nn.ModuleList()
        cin = 1
        for c in channels:
            layers = nn.ModuleDict({'conv1': nn.Conv2d(cin, c, k, padding=k // 2, bias=False), 'bn1': nn.BatchNorm2d(c)})
            if convs == 2:
                layers['conv2'] = nn.Conv2d(c, c, k, padding=k // 2, bias=False)
                layers['bn2'] = nn.BatchNorm2d(c)
            self.blocks.append(layers)
            cin = c
        self.fc1 = nn.Linear(cin, cin)
        self.fc_out = nn.Linear(cin, outputs)

    def forward(self, x):  # [B, 1, T, M]
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        for i, b in enumerate(self.blocks):
            x = F.relu(b['bn1'](b['conv1'](x)))
            if self.convs == 2:
                x = F.relu(b['bn2'](b['conv2'](x)))
            if not (self.backbone == 'cnn14' and i == len(self.blocks) - 1):
                x = F.avg_pool2d(x, 2)
        x = x.mean(dim=3)
        x = x.max(dim=2).values + x.mean(dim=2)
        e = F.relu(self.fc1(x))
        return e, self.fc_out(e)


class ResNet14(nn.Module):
    """The authors' ResNet14 (torchvision ResNet-18 layout), with stage widths as a parameter."""
    def __init__(self, channels, outputs=10):
        super().__init__()
        net = torchvision.models.resnet.ResNet(torchvision.models.resnet.BasicBlock, [2, 2, 2, 2], num_classes=outputs)
        if channels != [64, 128, 256, 512]:  # narrower stages for a small forward case
            net.inplanes = channels[0]
            net.conv1 = nn.Conv2d(1, channels[0], 7, 2, 3, bias=False)
            net.bn1 = nn.BatchNorm2d(channels[0])
            net.layer1 = net._make_layer(torchvision.models.resnet.BasicBlock, channels[0], 2)
            net.layer2 = net._make_layer(torchvision.models.resnet.BasicBlock, channels[1], 2, stride=2)
            net.layer3 = net._make_layer(torchvision.models.resnet.BasicBlock, channels[2], 2, stride=2)
            net.layer4 = net._make_layer(torchvision.models.resnet.BasicBlock, channels[3], 2, stride=2)
        net.conv1 = nn.Conv2d(1, channels[0], kernel_size=7, stride=2, padding=3, bias=False)
        net.avgpool = nn.AdaptiveAvgPool2d(1)
        net.fc = nn.Identity()
        self.net = net
        self.fc = nn.Linear(channels[-1], outputs)

    def forward(self, x):  # [B, 1, T, M] -> their (B, 1, M, T)
        e = self.net(x.permute(0, 1, 3, 2))
        return e, self.fc(e)


def ours_resnet(model):
    """ResNet14 weights under stages/lib/tf/resnet.ts names: kernels [frames, mels, in, out], i.e. the
    torch kernel [out, in, mels, frames] transposed, as the permuted input is."""
    w = {}
    def conv_bn(name, conv, bn):
        w[name] = conv.weight.permute(3, 2, 1, 0)
        w[f'{name}.bn.gamma'], w[f'{name}.bn.beta'] = bn.weight, bn.bias
        w[f'{name}.bn.running_mean'], w[f'{name}.bn.running_var'] = bn.running_mean, bn.running_var
    net = model.net
    conv_bn('stem.conv', net.conv1, net.bn1)
    for s in range(1, 5):
        for j, block in enumerate(getattr(net, f'layer{s}')):
            conv_bn(f'layer{s}.{j}.conv1', block.conv1, block.bn1)
            conv_bn(f'layer{s}.{j}.conv2', block.conv2, block.bn2)
            if block.downsample is not None:
                conv_bn(f'layer{s}.{j}.downsample', block.downsample[0], block.downsample[1])
    w['fc_out.weight'], w['fc_out.bias'] = model.fc.weight.T, model.fc.bias
    return {k: {'shape': list(v.shape), 'data': v.detach().contiguous().flatten().tolist()} for k, v in w.items()}


def randomize_bn(net):
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):  # non-trivial running statistics
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)


def ours(net):
    """Weights under stages/lib/tf/models.ts names and layouts (HWIO kernels, [in, out] dense)."""
    w = {}
    def bn(name, m):
        w[f'{name}.gamma'], w[f'{name}.beta'] = m.weight, m.bias
        w[f'{name}.running_mean'], w[f'{name}.running_var'] = m.running_mean, m.running_var
    bn('bn0', net.bn0)
    for i, b in enumerate(net.blocks):
        for j in (1, 2):
            if f'conv{j}' in b:
                w[f'block{i}.conv{j}'] = b[f'conv{j}'].weight.permute(2, 3, 1, 0)
                bn(f'block{i}.bn{j}', b[f'bn{j}'])
    for name in ('fc1', 'fc_out'):
        w[f'{name}.weight'], w[f'{name}.bias'] = getattr(net, name).weight.T, getattr(net, name).bias
    return {k: {'shape': list(v.shape), 'data': v.detach().contiguous().flatten().tolist()} for k, v in w.items()}


out = {'torch': torch.__version__, 'params': {}, 'cases': []}
for name, ch in FULL.items():
    out['params'][name] = sum(p.numel() for p in Net(name, ch, 64).parameters())
for name, ch in {'small': [4, 8], 'cnn6': [4, 8, 8, 16], 'cnn10': [4, 8, 8, 16], 'cnn14': [4, 8, 8, 16, 16, 32]}.items():
    net = Net(name, ch, 32)
    randomize_bn(net)
    net.eval()
    x = torch.randn(2, 1, 64, 32)
    with torch.no_grad():
        e, y = net(x)
    out['cases'].append({'backbone': name, 'channels': ch, 'mels': 32, 'x': x.flatten().tolist(), 'x_shape': [2, 64, 32, 1],
                         'weights': ours(net), 'embedding': e.flatten().tolist(), 'output': y.flatten().tolist()})
out['params']['resnet14'] = sum(p.numel() for p in ResNet14([64, 128, 256, 512]).parameters())
# Odd sizes (37 frames, 29 mels) so that every stride-2 step meets an odd edge: torch pads both sides.
for ch, frames, mels in (([4, 8, 8, 16], 37, 29), ([4, 8, 8, 16], 64, 32)):
    net = ResNet14(ch)
    randomize_bn(net)
    net.eval()
    x = torch.randn(2, 1, frames, mels)
    with torch.no_grad():
        e, y = net(x)
    out['cases'].append({'backbone': 'resnet14', 'channels': ch, 'mels': mels, 'x': x.flatten().tolist(), 'x_shape': [2, frames, mels, 1],
                         'weights': ours_resnet(net), 'embedding': e.flatten().tolist(), 'output': y.flatten().tolist()})
path = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'models.json')
with open(path, 'w') as f:
    json.dump(out, f)
print('wrote', os.path.normpath(path), {k: v for k, v in out['params'].items()})
