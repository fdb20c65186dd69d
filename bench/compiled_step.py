"""A `Learner` whose training step runs through `torch.compile` (`CompileCB`: CUDA graphs on a GPU) vs the eager hand
loop of `bench/learner_overhead.py` and the eager `Learner` with the same callbacks, with and without the optimizer's
step compiled too (`CompileCB(compile_opt=True)`; the hand loop likewise with `compile_opt_step`). Same model (the
10_activations CNN), same data (Fashion-MNIST tensors on the device), same initial weights, plain SGD (no momentum, so
no optimizer state: each variant keeps one optimizer object across its runs, and a compiled step is compiled once);
a timed run = `--epochs` epochs (one fit for the Learner) of 60k train + 10k valid, for each batch size asked. Also
checks that compiled fits' per-epoch metrics equal an eager fit's (same seed). Alternated, repeated, each run bracketed
by a calibration probe. First checks `compile_opt_step` against eager steps on the device (AdamW, SGD with momentum).
Ends with `ratio=<x>`: `Learner + CompileCB(compile_opt=True)` / hand loop, at the last bs (a few lines before it,
`ratio_eager_step=`: `Learner + CompileCB()`); `--json` keeps every median and ratio.

    python bench/compiled_step.py --bs 256,1024 --repeats 4 --epochs 2 --json out.json   # on a GPU
    python bench/compiled_step.py --device cpu --n 2048 --bs 256 --repeats 1 --epochs 1 --backend aot_eager  # dry run"""
import argparse, contextlib, io, json, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import torch, torch.nn.functional as F
from torch import nn
from _common import machine, paired, summarize
from torcheval.metrics import MulticlassAccuracy
from miniai.fashion_mnist import load_fashion_mnist
from miniai.datasets import DataLoaders, TensorLoader, float_imgs
from miniai.conv import conv
from miniai.learner import Learner, TrainCB, DeviceCB, MetricsCB, ProgressCB
from miniai.accel import CompileCB, compile_opt_step

p = argparse.ArgumentParser(description=__doc__)
p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
p.add_argument('--bs', default='256,1024', help='comma-separated batch sizes')
p.add_argument('--repeats', type=int, default=7)
p.add_argument('--epochs', type=int, default=2, help='epochs per timed run (one fit for the Learner variants)')
p.add_argument('--n', type=int, default=None, help='use only the first n training items (a quick CPU dry-run)')
p.add_argument('--data', default=None, help='folder with the Fashion-MNIST IDX files (default: the usual search)')
p.add_argument('--json', default=None, help='also write the results to this file')
p.add_argument('--skip-model-only', action='store_true',
               help='leave out Learner + CompileCB(with_loss=False), measured in an earlier session (saves its compilation)')
p.add_argument('--backend', default=None, help="torch.compile backend, e.g. 'aot_eager' for a quick CPU dry run (default: inductor)")
a = p.parse_args()
dev = torch.device(a.device)
sync = torch.cuda.synchronize if dev.type == 'cuda' else None
print(f'machine: {machine()}; device {dev}', flush=True)

def cnn(): return nn.Sequential(conv(1,8,ks=5), conv(8,16), conv(16,32), conv(32,64), conv(64,10,act=False), nn.Flatten())
torch.manual_seed(0)
init = cnn().state_dict()
xt, yt, xv, yv = (t.to(dev) for t in load_fashion_mnist(a.data))
if a.n: xt, yt, xv, yv = xt[:a.n], yt[:a.n], xv[:a.n//6], yv[:a.n//6]
res = {'machine': machine(), 'device': str(dev)}
bkw = {} if a.backend is None else {'backend': a.backend}

def check_opt_steps():
    "`compile_opt_step` against eager on this device: AdamW and SGD with momentum, lr (and betas) changed every step"
    from copy import deepcopy
    for cls, kw in ((torch.optim.AdamW, {}), (torch.optim.SGD, {'momentum': 0.9})):
        torch.manual_seed(0)
        m1 = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10)).to(dev); m2 = deepcopy(m1)
        o1, o2 = (cls(m.parameters(), lr=1e-2, **kw) for m in (m1, m2))
        step = compile_opt_step(o1, **bkw)
        for i in range(5):
            x, y = torch.randn(64, 1, 28, 28, device=dev), torch.randint(0, 10, (64,), device=dev)
            for m in (m1, m2): F.cross_entropy(m(x), y).backward()
            step(); o2.step()
            for o in (o1, o2):
                o.zero_grad()
                for pg in o.param_groups:
                    pg['lr'] = 1e-2/(i+2)
                    if 'betas' in pg: pg['betas'] = (0.9-0.02*i, 0.99)
        d = max((p1-p2).abs().max().item() for p1, p2 in zip(m1.parameters(), m2.parameters()))
        # each step moves a weight by up to ~lr = 1e-2; a fused kernel rounds Adam's m/(sqrt(v)+eps) differently, which
        # showed as 1.1e-5 on an H200 (torch 2.11): 0.1% of one step. A wrong step (lr or betas not followed) is ~1e-3.
        ok = 'same within rounding' if d < 1e-4 else 'DIFFERENT: check compile_opt_step on this machine'
        print(f'compiled {cls.__name__} step vs eager after 5 steps (an MLP): max weight difference {d:.2e}, {ok}', flush=True)
        res[f'opt_check_{cls.__name__}'] = d

def run_bs(bs):
    def hand(model, compile_opt=False):
        opt = torch.optim.SGD(plain.parameters(), lr=0.1)       # no momentum: no state, so one optimizer serves all runs
        step = compile_opt_step(opt, **bkw) if compile_opt else opt.step
        def epochs():
            graphs = model is not plain
            plain.load_state_dict(init)
            for _ in range(a.epochs):
                model.train()
                idx = torch.randperm(len(xt), device=dev)
                for i in range(0, len(xt), bs):
                    j = idx[i:i+bs]
                    if graphs: torch.compiler.cudagraph_mark_step_begin()
                    loss = F.cross_entropy(model(xt[j][:, None].float().div_(255)), yt[j])
                    loss.backward(); step(); opt.zero_grad()
                model.eval()
                with torch.no_grad():
                    for i in range(0, len(xv), bs*2):
                        if graphs: torch.compiler.cudagraph_mark_step_begin()
                        model(xv[i:i+bs*2][:, None].float().div_(255))
        return epochs
    plain = cnn().to(dev)
    hand_epoch = hand(plain)
    cplain = torch.compile(plain, mode='reduce-overhead' if dev.type == 'cuda' and not bkw else None, dynamic=False, **bkw)
    hand_compiled,hand_compiled_opt = hand(cplain),hand(cplain, compile_opt=True)
    dls = DataLoaders(TensorLoader(xt, yt, bs=bs, shuffle=True, tfm=float_imgs),
                      TensorLoader(xv, yv, bs=bs*2, tfm=float_imgs))
    def learner(step_cb):
        model = cnn().to(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)     # one optimizer for all fits (stateless SGD: same result)
        learn = Learner(model, dls, F.cross_entropy, lr=0.1, opt_func=lambda params, lr: opt,
                        cbs=[DeviceCB(dev), step_cb, MetricsCB(accuracy=MulticlassAccuracy()), ProgressCB()])
        def epoch(n=a.epochs, seed=None):    # the same model object each time (the compiled code stays valid), reset weights
            model.load_state_dict(init)
            if seed is not None: torch.manual_seed(seed)
            with contextlib.redirect_stdout(io.StringIO()): learn.fit(n)
            return learn.metrics.history
        return epoch
    eager,compiled = learner(TrainCB()),learner(CompileCB(**bkw))
    model_only = None if a.skip_model_only else learner(CompileCB(with_loss=False, **bkw))
    compiled_opt = learner(CompileCB(compile_opt=True, **bkw))
    r = {}
    for nm,f in (('compile', compiled), ('compile_opt', compiled_opt)):
        t = time.perf_counter(); f(2); sync and sync()
        r[f'{nm}_and_first_2_epochs_s'] = round(time.perf_counter()-t, 1)
    he,hc,hco = eager(3, seed=1),compiled(3, seed=1),compiled_opt(3, seed=1)
    print(f'bs {bs}: eager fit  {he}\nbs {bs}: compiled fit {hc}\nbs {bs}: compiled fit + step {hco}', flush=True)
    def diff(h): return max(abs(float(e[k])-float(c[k])) for e,c in zip(he, h) for k in ('accuracy', 'loss'))
    r['max_metric_diff'],r['max_metric_diff_compile_opt'] = diff(hc),diff(hco)
    variants = {'hand loop': hand_epoch, 'hand loop, compiled model': hand_compiled,
                'hand loop, compiled model + step': hand_compiled_opt, 'Learner eager': eager,
                'Learner + CompileCB(with_loss=False)': model_only, 'Learner + CompileCB': compiled,
                'Learner + CompileCB(compile_opt=True)': compiled_opt}
    if a.skip_model_only: del variants['Learner + CompileCB(with_loss=False)']
    hand_epoch(); hand_compiled(); hand_compiled(); hand_compiled_opt(); hand_compiled_opt(); eager()
    if not a.skip_model_only: model_only(2)
    kept, dropped, best = paired(variants, a.repeats, sync=sync)
    import statistics as st
    r.update({k: round(st.median(v), 4) for k,v in kept.items()})
    for k in kept: r['ratio '+k] = round(st.median([o/b for b,o in zip(kept['hand loop'], kept[k])]), 3)
    print(f'bs {bs}: {r}', flush=True)
    print(f"ratio_eager_step={r['ratio Learner + CompileCB']}")
    r['ratio'] = summarize({k:kept[k] for k in ('hand loop', 'Learner + CompileCB(compile_opt=True)')}, 'hand loop',
                           'Learner + CompileCB(compile_opt=True)', dropped, best)     # ends with ratio=<x>
    return r

check_opt_steps()
for bs in map(int, a.bs.split(',')): res[f'bs{bs}'] = run_bs(bs)
if a.json: Path(a.json).write_text(json.dumps(res, indent=1))
