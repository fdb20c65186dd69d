"""Per-item loading (🤗 `with_transform` + torch DataLoader, the course's pipeline) vs miniai's default in-memory path
(`TensorLoader`: decode once, then a shuffled index and slicing). One epoch of the Fashion-MNIST training set each,
alternated and repeated, bracketed by a calibration probe. Prints images/s and ends with `ratio=<x>`
(per-item seconds / in-memory seconds, so >1 means the in-memory path is faster)."""
import argparse, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import torch
from _common import machine, paired, summarize
from miniai.fashion_mnist import fashion_mnist_dd
from miniai.datasets import DataLoaders

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--quick', action='store_true', help='fewer repeats and a 10,000-image subset for the per-item path')
p.add_argument('--bs', type=int, default=1024)
p.add_argument('--workers', type=int, default=0, help='num_workers for the per-item DataLoader')
p.add_argument('--repeats', type=int, default=None)
a = p.parse_args()
n_rep = a.repeats or (3 if a.quick else 5)

dd = fashion_mnist_dd()
n = 10_000 if a.quick else len(dd['train'])
sub = type(dd)(train=dd['train'].select(range(n)), test=dd['test'].select(range(1000)))
t = time.perf_counter(); fast = DataLoaders.from_dd(sub, a.bs); decode = time.perf_counter() - t
slow = DataLoaders.from_dd(sub, a.bs, fast=False, num_workers=a.workers)

def epoch(dl):
    def f():
        for xb, yb in dl: pass
        assert xb.dtype == torch.float32 and xb.shape[1:] == (1, 28, 28)
    return f

print(f'machine: {machine()}')
print(f'{n} training images per epoch, bs {a.bs}, per-item workers {a.workers}; one-off decode for the in-memory path: {decode:.2f}s')
epoch(slow.train)(); epoch(fast.train)()   # warm up
kept, dropped, best = paired({'per-item with_transform': epoch(slow.train), 'in-memory TensorLoader': epoch(fast.train)}, n_rep)
for k, v in kept.items():
    if v: print(f'{k:>28}: {n/statistics.median(v):,.0f} images/s')
# ratio printed as per-item time over in-memory time: how many times faster the default path is
summarize(kept, 'in-memory TensorLoader', 'per-item with_transform', dropped, best)
