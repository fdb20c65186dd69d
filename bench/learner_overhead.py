"""miniai's Learner with its default callbacks (DeviceCB, MetricsCB with accuracy, ProgressCB) and in-memory data path
(`DataLoaders.from_dd`) vs a hand-written loop that slices a shuffled index of preloaded tensors. Two Learner variants:
loaders built on the device (`from_dd(..., device=dev)`), and the default path: one `DataLoaders` object built on the
CPU and given to every new Learner, as a user reuses `dls` across fits: `DeviceCB` moves in-memory loaders to the device
once, before the (warm-up) fit, and leaves them there, so the timed fits find them on the device. That one-time move
(host -> device copy of the whole data set) is timed on its own, on fresh CPU copies, and printed in ms and as a share
of one hand-loop epoch: the hand loop's data is put on the device before any timing and never pays it.
Same model (the 10_activations CNN), same data, same initial weights, bs 1024, one epoch = 60k train + 10k valid.
Alternated, repeated, each run bracketed by a calibration probe. Ends with `ratio=<x>` (Learner / hand loop).

`--compiled` adds three variants to the same alternated runs: `Learner` + `CompileCB()` (model and loss compiled, CUDA
graphs on a GPU), `Learner` + `CompileCB(compile_opt=True)` (the optimizer's step compiled too) and `Learner` +
`GraphStepCB()` (forward, loss and backward of the compiled model recorded in one CUDA graph), each on one model
object and one SGD optimizer reused across its runs with the weights reloaded (`CompileCB` compiles once per model and
its step once per optimizer, `GraphStepCB` records once per model and batch shape; SGD without momentum has no state,
so a reused optimizer steps like a new one); their compilation happens in warm-up fits, before the timed runs. Then
the output ends with `ratio_compiled_eager_step=<x>`, `ratio_compiled=<x>` (`CompileCB(compile_opt=True)` / hand
loop) and, last, `ratio_graph_step=<x>` (`GraphStepCB`). On a CPU they compile with the backend `aot_eager` (no C++
compiler needed; not a speed measurement of inductor) unless `--backend` says otherwise.

    python bench/learner_overhead.py --device cuda --bs 1024 --compiled"""
import argparse, contextlib, copy, io, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import torch, torch.nn.functional as F
from torch import nn
from _common import machine, paired, summarize
from torcheval.metrics import MulticlassAccuracy
from miniai.fashion_mnist import fashion_mnist_dd, load_fashion_mnist
from miniai.datasets import DataLoaders, TensorLoader, float_imgs
from miniai.conv import conv
from miniai.learner import Learner, TrainLearner, DeviceCB, MetricsCB, ProgressCB
from miniai.accel import CompileCB, GraphStepCB

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--quick', action='store_true', help='3 pairs of epochs instead of 7 (under a minute on 2 cores)')
p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
p.add_argument('--bs', type=int, default=1024)
p.add_argument('--repeats', type=int, default=None)
p.add_argument('--data', default=None, help='folder with the Fashion-MNIST IDX files (default: the usual search)')
p.add_argument('--compiled', action='store_true', help='also time Learner + CompileCB, without and with compile_opt')
p.add_argument('--backend', default=None, help='torch.compile backend for --compiled (default: inductor on a GPU, '
               'aot_eager on a CPU)')
a = p.parse_args()
dev, bs, n_rep = torch.device(a.device), a.bs, a.repeats or (3 if a.quick else 7)
sync = torch.cuda.synchronize if dev.type == 'cuda' else None

def cnn(): return nn.Sequential(conv(1,8,ks=5), conv(8,16), conv(16,32), conv(32,64), conv(64,10,act=False), nn.Flatten())
torch.manual_seed(0)
init = cnn().state_dict()
def fresh():
    m = cnn(); m.load_state_dict(init); return m.to(dev)

# the hand loop's data: uint8 tensors on the device, converted per batch exactly as the default path does
cpu_data = load_fashion_mnist(a.data)
xt, yt, xv, yv = (t.to(dev) for t in cpu_data)
def hand_epoch():
    model = fresh(); opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    idx = torch.randperm(len(xt), device=dev)
    for i in range(0, len(xt), bs):
        j = idx[i:i+bs]
        xb, yb = xt[j][:, None].float().div_(255), yt[j]
        loss = F.cross_entropy(model(xb), yb)
        loss.backward(); opt.step(); opt.zero_grad()
    model.eval()
    tot, correct = torch.zeros((), device=dev), torch.zeros((), device=dev)
    with torch.no_grad():
        for i in range(0, len(xv), bs*2):
            xb, yb = xv[i:i+bs*2][:, None].float().div_(255), yv[i:i+bs*2]
            out = model(xb)
            tot += F.cross_entropy(out, yb, reduction='sum'); correct += (out.argmax(1) == yb).sum()
    hand_epoch.result = (float(tot)/len(xv), float(correct)/len(xv))

try:
    dd = fashion_mnist_dd(a.data)
    def make_dls(device=None): return DataLoaders.from_dd(dd, bs, device=device)
    how = 'DataLoaders.from_dd'
except ImportError:   # no 🤗 `datasets` (as on the lent GPU machine): the in-memory loaders from_dd's default path builds
    def make_dls(device=None):
        x, y, xv_, yv_ = cpu_data
        return DataLoaders(TensorLoader(x, y, bs=bs, shuffle=True, tfm=float_imgs, device=device),
                           TensorLoader(xv_, yv_, bs=bs*2, tfm=float_imgs, device=device))
    how = 'TensorLoader + float_imgs (what from_dd builds; `datasets` is not installed)'
dls = make_dls(dev)
cpu_dls = make_dls()               # the default: built on the CPU
make_cpu_dls = make_dls()          # stays on the CPU: the source of the copies `timed_move` moves
def run_learner(dls):
    metrics = MetricsCB(accuracy=MulticlassAccuracy())
    learn = TrainLearner(fresh(), dls, F.cross_entropy, lr=0.1, cbs=[DeviceCB(dev), metrics, ProgressCB()])
    with contextlib.redirect_stdout(io.StringIO()): learn.fit(1)     # the console table is printed, then discarded
    return metrics.last
def learner_epoch(): learner_epoch.result = run_learner(dls)
def default_path_epoch(): default_path_epoch.result = run_learner(cpu_dls)   # the warm-up fit moved it; it stays
def timed_move():
    "Seconds for DeviceCB's one-time move of fresh CPU copies of the default path's loaders (shallow copies: `to` rebinds)"
    fresh_dls = [copy.copy(make_cpu_dls.train), copy.copy(make_cpu_dls.valid)]
    if sync: sync()
    t = time.perf_counter()
    for dl in fresh_dls: dl.to(dev)
    if sync: sync()
    return time.perf_counter() - t

def compiled_learner(compile_opt, graph=False):
    "Learner + CompileCB (or GraphStepCB) on one model and one optimizer, the weights reloaded before each 1-epoch fit"
    model, metrics = fresh(), MetricsCB(accuracy=MulticlassAccuracy())
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    backend = a.backend or (None if dev.type == 'cuda' else 'aot_eager')
    kw = {} if backend is None else {'backend': backend}
    ccb = GraphStepCB(**kw) if graph else CompileCB(compile_opt=compile_opt, **kw)
    learn = Learner(model, dls, F.cross_entropy, lr=0.1, opt_func=lambda params, lr: opt,
                    cbs=[DeviceCB(dev), ccb, metrics, ProgressCB()])
    def epoch():
        model.load_state_dict(init)
        with contextlib.redirect_stdout(io.StringIO()): learn.fit(1)
        epoch.result = metrics.last
    return epoch

print(f'machine: {machine()}; device {dev}; bs {bs}; loaders: {how}')
hand_epoch(); learner_epoch(); default_path_epoch()   # warm up (and check that all train)
print(f'hand loop valid loss/acc {hand_epoch.result}; learner metrics {learner_epoch.result}; '
      f'default path {default_path_epoch.result}')
variants = {'hand loop': hand_epoch, 'Learner (default cbs)': learner_epoch, 'Learner (default path)': default_path_epoch}
if a.compiled:
    comp = {'Learner + CompileCB': compiled_learner(False), 'Learner + CompileCB(compile_opt=True)': compiled_learner(True),
            'Learner + GraphStepCB': compiled_learner(False, graph=True)}
    for k,f in comp.items():     # compiles (every batch shape); GraphStepCB captures the last batch's graph in fit 3
        t = time.perf_counter(); f(); f(); f(); sync and sync()
        print(f'{k}: compile and 3 warm-up epochs {time.perf_counter()-t:.1f}s; metrics {f.result}')
    variants.update(comp)
assert cpu_dls.train.device == cpu_dls.valid.device == xt.device, 'DeviceCB should have left the loaders on the device'
assert make_cpu_dls.train.device.type == 'cpu'
kept, dropped, best = paired(variants, n_rep, sync=sync)
dp = statistics.median(o/b for b,o in zip(kept['hand loop'], kept['Learner (default path)'])) if kept['hand loop'] else float('nan')
print(f"default path (CPU-built loaders, moved once by the warm-up fit's DeviceCB): ratio_default_path={dp:.3f}")
timed_move()                       # warm up the copy path
moves = [timed_move() for _ in range(n_rep)]
mv, hand = statistics.median(moves), statistics.median(kept['hand loop']) if kept['hand loop'] else float('nan')
print(f'one-time move of the CPU loaders to {dev} (DeviceCB, before the first fit): median {mv*1e3:.1f} ms over '
      f'{n_rep} runs, {mv/hand:.1%} of one hand-loop epoch ({hand*1e3:.0f} ms); not in the timed fits above')
summarize(kept, 'hand loop', 'Learner (default cbs)', dropped, best)
if a.compiled and kept['hand loop']:
    def ratio(k): return statistics.median(o/b for b,o in zip(kept['hand loop'], kept[k]))
    print(f"ratio_compiled_eager_step={ratio('Learner + CompileCB'):.3f}")
    print(f"ratio_compiled={ratio('Learner + CompileCB(compile_opt=True)'):.3f}")
    print(f"ratio_graph_step={ratio('Learner + GraphStepCB'):.3f}")
