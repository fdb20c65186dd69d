"""Where the Learner's time goes on a device, against bench/learner_overhead.py's hand loop: the hand loop, the hand loop
fed by a `TensorLoader`, then the Learner with DeviceCB only, + MetricsCB, + ProgressCB, and all three; one epoch each,
alternated, medians and ratios to the hand loop. `python bench/learner_breakdown.py --device cuda [--bs 1024]`.
Used on an H200 for BENCHMARKS.md's breakdown (2026-11-29)."""
import argparse, sys, time, statistics, contextlib, io, torch, torch.nn.functional as F
from pathlib import Path
from torch import nn
sys.path.insert(0, str(Path(__file__).parent))
from _common import hand_loops
from torcheval.metrics import MulticlassAccuracy
from miniai.fashion_mnist import load_fashion_mnist
from miniai.datasets import DataLoaders, TensorLoader, float_imgs
from miniai.conv import conv
from miniai.learner import TrainLearner, DeviceCB, MetricsCB, ProgressCB
p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--device', default='cuda'); p.add_argument('--bs', type=int, default=1024)
p.add_argument('--repeats', type=int, default=9)
a = p.parse_args()
dev, bs = torch.device(a.device), a.bs
sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
def cnn(): return nn.Sequential(conv(1,8,ks=5), conv(8,16), conv(16,32), conv(32,64), conv(64,10,act=False), nn.Flatten())
torch.manual_seed(0); init = cnn().state_dict()
def fresh(): m = cnn(); m.load_state_dict(init); return m.to(dev)
xt, yt, xv, yv = (t.to(dev) for t in load_fashion_mnist())
dls = DataLoaders(TensorLoader(xt, yt, bs=bs, shuffle=True, tfm=float_imgs), TensorLoader(xv, yv, bs=bs*2, tfm=float_imgs))
hand, hand_tl = hand_loops(xt, yt, xv, yv, bs, fresh, dls)
def L(*mk):
    def f():
        learn = TrainLearner(fresh(), dls, F.cross_entropy, lr=0.1, cbs=[m() for m in mk])
        with contextlib.redirect_stdout(io.StringIO()): learn.fit(1)
    return f
V = {'hand': hand, 'hand_tensorloader': hand_tl, 'L_dev': L(lambda: DeviceCB(dev)),
     'L_dev_metrics': L(lambda: DeviceCB(dev), lambda: MetricsCB(accuracy=MulticlassAccuracy())),
     'L_dev_progress': L(lambda: DeviceCB(dev), lambda: ProgressCB()),
     'L_all': L(lambda: DeviceCB(dev), lambda: MetricsCB(accuracy=MulticlassAccuracy()), lambda: ProgressCB())}
for f in V.values(): f()
T = {k: [] for k in V}
for r in range(a.repeats):
    for k, f in V.items():
        sync(); t = time.perf_counter(); f(); sync(); T[k].append(time.perf_counter()-t)
h = statistics.median(T['hand'])
for k, v in T.items(): print(f'{k:20} {statistics.median(v)*1000:7.1f} ms  ratio {statistics.median(v)/h:.3f}')
