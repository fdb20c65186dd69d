"Shared helpers for the tests: headless matplotlib, deterministic hypothesis, a tiny synthetic classification task."
import os
os.environ.setdefault('MPLBACKEND', 'Agg')   # no window, no Jupyter needed

import pytest, torch, torch.nn.functional as F
from torch import nn
from hypothesis import settings

# the same examples every run (a failure reproduces), few enough that the property tests take seconds
settings.register_profile('miniai', derandomize=True, max_examples=60, deadline=None, print_blob=True)
settings.load_profile('miniai')


def tiny_data(n:int=64, # training items
              nv:int=32, # validation items
              seed:int=0):
    "Two Gaussian features per item, label 1 when `x0 + x1/2 > 0`: a task a linear model learns in a few steps"
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n+nv, 4, generator=g)
    y = (x[:,0] + x[:,1]/2 > 0).long()
    return x[:n], y[:n], x[n:], y[n:]

def tiny_dls(bs:int=16, n:int=64, nv:int=32, seed:int=0):
    "`DataLoaders` over `tiny_data`: `n//bs` shuffled training batches, `nv//bs` validation batches"
    from miniai.datasets import DataLoaders, TensorLoader
    xt, yt, xv, yv = tiny_data(n, nv, seed)
    return DataLoaders(TensorLoader(xt, yt, bs=bs, shuffle=True), TensorLoader(xv, yv, bs=bs))

def tiny_model(seed:int=0):
    "A two-layer MLP (4 -> 8 -> 2) with fixed initial weights"
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))

def valid_loss(learn):
    "Cross-entropy of `learn.model` on the whole validation set"
    preds, targs = learn.get_preds()
    return F.cross_entropy(preds, targs).item()

def params(model):
    "A detached copy of every parameter of `model`"
    return [p.detach().clone() for p in model.parameters()]

def same_params(a, b): return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))

def hooks_left(model):
    "Number of forward (pre-)hooks still registered on any module of `model`"
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())

def pytest_configure(config):
    # torcheval (our metrics) still calls torch.jit.script, which PyTorch 2.13 deprecates: not ours to fix
    config.addinivalue_line('filterwarnings', r'ignore:`torch\.jit\.script` is deprecated:DeprecationWarning')
