"""The Learner before the 09 rebuild (commit 6a85f26) against today's, in one process, alternated, with each default
callback added in turn, plus the hand loop of bench/learner_overhead.py and that loop fed by a `TensorLoader`
(`hand_tl`; `hand_tl_blocking` and `new_all_blocking` put back the stream synchronisation that `TensorLoader`'s
blocking permutation copy made at the start of each shuffled pass before commit 8baa013).
Both Learners get the same `TensorLoader`s (today's). One timed run = a fresh model trained one epoch (60k train +
10k valid); medians of alternated runs, ratios to the hand loop.

    git archive 6a85f26 miniai | tar -x -C /tmp/old && mv /tmp/old/miniai /tmp/old/miniai_old
    python bench/learner_old_vs_new.py --old /tmp/old --device cuda --bs 1024 --repeats 15
"""
import argparse, os, sys, time, statistics as st, contextlib, io, torch, torch.nn.functional as F
p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--old', required=True, help='folder holding the old package as `miniai_old`')
p.add_argument('--device', default='cuda'); p.add_argument('--bs', type=int, default=1024)
p.add_argument('--repeats', type=int, default=15); p.add_argument('--limit', type=int, default=0, help='first n items only')
p.add_argument('--only', default='', help='comma-separated variants (the hand loop always runs)')
a = p.parse_args()
sys.path.insert(0, a.old)
from torch import nn
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import hand_loops
from torcheval.metrics import MulticlassAccuracy
from miniai.fashion_mnist import load_fashion_mnist
from miniai.datasets import DataLoaders, TensorLoader, float_imgs
from miniai.conv import conv
import miniai.learner as N
import miniai_old.learner as O
dev, bs, lim = torch.device(a.device), a.bs, a.limit or None
sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
def cnn(): return nn.Sequential(conv(1,8,ks=5), conv(8,16), conv(16,32), conv(32,64), conv(64,10,act=False), nn.Flatten())
torch.manual_seed(0); init = cnn().state_dict()
def fresh(): m = cnn(); m.load_state_dict(init); return m.to(dev)
xt, yt, xv, yv = (t[:lim].to(dev) for t in load_fashion_mnist())
dls = DataLoaders(TensorLoader(xt, yt, bs=bs, shuffle=True, tfm=float_imgs), TensorLoader(xv, yv, bs=bs*2, tfm=float_imgs))
hand, hand_tl = hand_loops(xt, yt, xv, yv, bs, fresh, dls)
def L(M, *names):
    def f():
        mk = {'dev': lambda: M.DeviceCB(dev), 'met': lambda: M.MetricsCB(accuracy=MulticlassAccuracy()), 'prog': lambda: M.ProgressCB()}
        learn = M.TrainLearner(fresh(), dls, F.cross_entropy, lr=0.1, cbs=[mk[n]() for n in names])
        with contextlib.redirect_stdout(io.StringIO()): learn.fit(1)
    return f
orig_iter = TensorLoader.__iter__
def blocking_iter(self):
    "`TensorLoader.__iter__` as before 8baa013: the permutation's copy waited for the stream (the copy itself is tiny)"
    if self.shuffle and self.device.type == 'cuda': torch.cuda.current_stream(self.device).synchronize()
    yield from orig_iter(self)
def blocking(f):
    def g():
        TensorLoader.__iter__ = blocking_iter
        try: f()
        finally: TensorLoader.__iter__ = orig_iter
    return g
V = {'hand': hand, 'hand_tl': hand_tl, 'hand_tl_blocking': blocking(hand_tl),
     'new_L': L(N), 'old_L': L(O), 'new_dev': L(N, 'dev'), 'old_dev': L(O, 'dev'),
     'new_dev_met': L(N, 'dev', 'met'), 'old_dev_met': L(O, 'dev', 'met'),
     'new_dev_prog': L(N, 'dev', 'prog'), 'old_dev_prog': L(O, 'dev', 'prog'),
     'new_all': L(N, 'dev', 'met', 'prog'), 'old_all': L(O, 'dev', 'met', 'prog'), 'new_all_blocking': blocking(L(N, 'dev', 'met', 'prog'))}
only = a.only; V = {k: v for k, v in V.items() if not only or k in only.split(',') or k == 'hand'}
for f in V.values(): f(); f()
T = {k: [] for k in V}
for r in range(a.repeats):
    for k, f in (V.items() if r % 2 == 0 else reversed(V.items())):
        sync(); t = time.perf_counter(); f(); sync(); T[k].append(time.perf_counter()-t)
h = st.median(T['hand'])
print(f'device {dev}, bs {bs}, {len(xt)} train items, {len(T["hand"])} alternated runs each', flush=True)
for k in V: print(f'{k:14} {st.median(T[k])*1000:7.1f} ms  ratio {st.median(T[k])/h:.3f}  '
                  f'paired {st.median(o/b for o, b in zip(T[k], T["hand"])):.3f}', flush=True)
