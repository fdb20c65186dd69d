"""Reproducibility on the CPU: the same seed gives the same fit, bit for bit; DataLoader worker processes are seeded.

What is seeded, and by what:
- `set_seed(s)` (miniai.activations) seeds Python's `random`, NumPy and PyTorch (CPU and CUDA): weight init,
  `TensorLoader`'s shuffle (`torch.randperm`), torch `RandomSampler` and dropout all follow from it.
- torch `DataLoader` workers (`get_dls(..., num_workers=k)`): PyTorch draws a base seed from the main process's torch
  generator when the workers start (each epoch; once with `persistent_workers=True`) and seeds `random`, NumPy and torch
  in worker `i` from `base + i`. So a seeded run repeats, workers never share a random stream, and every epoch draws
  new augmentations.
- Not covered here: GPU kernels (cuDNN/cuBLAS) need `set_seed(s, deterministic=True)`; results across PyTorch versions
  or CPU types (different BLAS kernels) are not guaranteed to be bitwise equal."""
import random

import numpy as np, pytest, torch, torch.nn.functional as F

from miniai.datasets import TensorLoader
from miniai.learner import MetricsCB, TrainLearner
from miniai.training import Dataset, fit, get_dls
from conftest import params, same_params, tiny_dls

try: from miniai.activations import set_seed
except ImportError:
    def set_seed(s): random.seed(s); np.random.seed(s); torch.manual_seed(s)

def seeded_fit(seed, n_epochs=2):
    "Seed, build the model (random init), train with shuffled batches and dropout; return the metrics history and weights"
    from torcheval.metrics import MulticlassAccuracy
    set_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 2))
    m = MetricsCB(acc=MulticlassAccuracy())
    learn = TrainLearner(model, tiny_dls(), F.cross_entropy, lr=0.3, cbs=[m])
    learn.fit(n_epochs)
    return m.history, params(model)

def test_two_fits_with_the_same_seed_are_identical(capsys):
    h1, w1 = seeded_fit(42)
    h2, w2 = seeded_fit(42)
    assert h1 == h2 and len(h1) == 4
    assert same_params(w1, w2)
    h3, w3 = seeded_fit(43)                 # and the seed matters: the test could fail
    assert not same_params(w1, w3)

def test_tensor_loader_shuffle_follows_the_seed():
    dl = TensorLoader(torch.arange(100), bs=10, shuffle=True)
    torch.manual_seed(0); a = [b[0] for b in dl] + [b[0] for b in dl]
    torch.manual_seed(0); b = [b[0] for b in dl] + [b[0] for b in dl]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(torch.cat(a[:10]), torch.cat(a[10:]))   # each epoch a new order

def test_training_fit_is_reproducible(capsys):
    "miniai.training.fit with get_dls (torch DataLoaders, shuffled): same seed, same printed metrics"
    def run():
        set_seed(1)
        x, y = torch.randn(96, 4), torch.randint(0, 2, (96,))
        model = torch.nn.Linear(4, 2)
        trn, val = get_dls(Dataset(x[:64], y[:64]), Dataset(x[64:], y[64:]), 16)
        res = fit(2, model, F.cross_entropy, torch.optim.SGD(model.parameters(), 0.2), trn, val)
        return res, capsys.readouterr().out
    (r1, o1), (r2, o2) = run(), run()
    assert r1 == r2 and o1 == o2 and o1.count('epoch') == 2

class RandomAug(torch.utils.data.Dataset):
    "Each item draws from torch, NumPy and Python's `random`, like a random augmentation would"
    def __len__(self): return 24
    def __getitem__(self, i):
        info = torch.utils.data.get_worker_info()
        return (torch.tensor([float(i), torch.rand(()).item(), float(np.random.rand()), random.random()]),
                torch.tensor(-1 if info is None else info.id))

def epochs_with_workers(seed, n_epochs=2, **kw):
    set_seed(seed)
    trn, _ = get_dls(RandomAug(), RandomAug(), 4, num_workers=2, **kw)
    return [torch.cat([xb for xb, _ in trn]) for _ in range(n_epochs)], [torch.cat([w for _, w in trn])]

@pytest.mark.parametrize('persistent', [False, True])
def test_dataloader_workers_are_seeded(persistent):
    "Fresh workers each epoch, or persistent ones (seeded once, their streams go on from epoch to epoch)"
    (e1, e2), (w,) = epochs_with_workers(7, persistent_workers=persistent)
    (f1, f2), _ = epochs_with_workers(7, persistent_workers=persistent)
    assert torch.equal(e1, f1) and torch.equal(e2, f2)                  # same seed: same order, same augmentations
    assert set(w.tolist()) == {0, 1}                                    # both workers served batches
    for e in (e1, e2):
        assert sorted(e[:, 0].tolist()) == list(map(float, range(24)))   # each item once per epoch
        for col in (1, 2, 3): assert len(set(e[:, col].tolist())) == 24  # no two workers share a random stream
    for col in (1, 2, 3):                                               # a new epoch draws new values
        assert not set(e1[:, col].tolist()) & set(e2[:, col].tolist())
    (g1, _), _ = epochs_with_workers(8, persistent_workers=persistent)
    assert not torch.equal(e1, g1)
