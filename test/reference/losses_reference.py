#!/usr/bin/python3
"""Reference values of RRTN's losses from PyTorch (Debian python3-torch), for test/training-losses.test.ts.
Writes test/fixtures/losses.json: random predictions, targets and embeddings (seeded), and the CCC
per emotion, the pooled CCC loss, the per-emotion CCC loss, the Barlow Twins loss (lambda 0.001 and
0.005) and the RUWL total. Formulas as in ../shared/reference/rrtn.md (the authors' code)."""
import json, os
import torch

torch.manual_seed(7)
B, K, D = 16, 10, 24
pred = torch.rand(B, K, dtype=torch.float64)
target = (0.6 * pred + 0.4 * torch.rand(B, K, dtype=torch.float64)).clamp(0, 1)
z1 = torch.randn(B, D, dtype=torch.float64)
z2 = 0.7 * z1 + 0.5 * torch.randn(B, D, dtype=torch.float64)
s = torch.tensor([1.0, 1.0, 0.001], dtype=torch.float64) + 0.2 * torch.rand(3, dtype=torch.float64)


def ccc(x, y, dim=None):
    mx, my = x.mean(dim=dim), y.mean(dim=dim)
    vx, vy = ((x - mx) ** 2).mean(dim=dim), ((y - my) ** 2).mean(dim=dim)
    cov = ((x - mx) * (y - my)).mean(dim=dim)
    return 2 * cov / (vx + vy + (mx - my) ** 2)


def barlow(z1, z2, lam):
    bn = lambda z: (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5)  # BatchNorm1d, affine=False
    c = bn(z1).T @ bn(z2) / z1.shape[0]
    on = ((torch.diagonal(c) - 1) ** 2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lam * off


def barlow_affine(z1, z2, gamma, beta, lam):
    """The authors' reading: BatchNorm1d(affine=True) in training mode, C from its output as is."""
    bn = lambda z: (z - z.mean(0)) / torch.sqrt(z.var(0, unbiased=False) + 1e-5) * gamma + beta
    c = bn(z1).T @ bn(z2) / z1.shape[0]
    on = ((torch.diagonal(c) - 1) ** 2).sum()
    off = (c - torch.diag(torch.diagonal(c))).pow(2).sum()
    return on + lam * off


# Drawn after everything above, so the values above stay as they were.
gamma = 1 + 0.3 * torch.randn(D, dtype=torch.float64)
beta = 0.2 * torch.randn(D, dtype=torch.float64)

l1 = 1 - ccc(pred, target)
l2 = 1 - ccc(pred.flip(0), target)
lbt = barlow(z1, z2, 0.001)
ruwl = (l1 / s[0] ** 2 + torch.log(1 + s[0] ** 2) + l2 / s[1] ** 2 + torch.log(1 + s[1] ** 2)
        + 1e-8 * lbt / s[2] ** 2 + torch.log(1 + s[2] ** 2) + torch.abs(2 - s.abs().sum()))
out = dict(
    torch=torch.__version__, pred=pred.tolist(), target=target.tolist(), z1=z1.tolist(), z2=z2.tolist(), s=s.tolist(),
    ccc_per_emotion=ccc(pred, target, dim=0).tolist(), ccc_loss_pooled=float(l1), ccc_loss_pooled_flipped=float(l2),
    ccc_loss_per_emotion=float(1 - ccc(pred, target, dim=0).mean()), barlow_0001=float(lbt), barlow_0005=float(barlow(z1, z2, 0.005)),
    ruwl_total=float(ruwl), gamma=gamma.tolist(), beta=beta.tolist(),
    barlow_affine_0001=float(barlow_affine(z1, z2, gamma, beta, 0.001)))
# RUWL where learned values went negative (nothing keeps them positive; the restraint takes |s|):
# totals and gradients with respect to s, computed after everything above so those stay as they were.
ruwl_negative = []
for values in ([-0.8, 1.3, -0.05], [0.9, -1.1, 0.002], [-1.5, -0.7, 0.3], [-0.2, 0.4, -0.001]):
    sv = torch.tensor(values, dtype=torch.float64, requires_grad=True)
    total = (l1 / sv[0] ** 2 + torch.log(1 + sv[0] ** 2) + l2 / sv[1] ** 2 + torch.log(1 + sv[1] ** 2)
             + 1e-8 * lbt / sv[2] ** 2 + torch.log(1 + sv[2] ** 2) + torch.abs(2 - sv.abs().sum()))
    total.backward()
    ruwl_negative.append(dict(s=values, total=float(total), grad=sv.grad.tolist()))
out['ruwl_negative'] = ruwl_negative
path = os.path.join(os.path.dirname(__file__), '..', 'fixtures', 'losses.json')
with open(path, 'w') as f:
    json.dump(out, f)
print('wrote', os.path.normpath(path))
