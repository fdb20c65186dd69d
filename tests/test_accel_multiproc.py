"""`AccelerateCB` in two CPU processes (gloo), started by torchrun as a user would: each process trains on its own,
disjoint shard of the data, the metrics reduced over both equal a one-process run, only rank 0 prints and writes the
checkpoint, a cancel or an error raised on rank 1 ends the fit on both, and nothing hangs (a timeout fails the test).
The same file is the worker: `python tests/test_accel_multiproc.py OUTDIR` runs the scenarios in each process."""
import json, os, signal, subprocess, sys, tempfile
from pathlib import Path
import pytest

N,BS = 192,16           # 192 items: 6 global batches of 2*16 in two processes, or of 32 in one
NV = 101                # validation: 3 batches of 32, then 5 items shared 2 + 3 (all_gather of unequal sizes)


def worker(out:Path):
    import torch, torch.nn.functional as F
    from torch import nn
    from torcheval.metrics import MulticlassAccuracy
    from miniai.datasets import DataLoaders, TensorLoader
    from miniai.learner import Learner, Callback, MetricsCB, ProgressCB, CancelFitException
    from miniai.accel import AccelerateCB
    torch.manual_seed(0)
    x = torch.randn(N+NV, 4); y = (x[:,0] + x[:,1]/2 > 0).long(); idx = torch.arange(N+NV)
    acb = AccelerateCB(seed=3)
    rank,n = acb.rank,acb.n_procs
    sys.stdout = open(out/f'stdout{rank}.txt', 'w', buffering=1)       # what this process prints
    bs = BS*2//n                                                       # the same global batch in 1 or 2 processes
    dls = DataLoaders(TensorLoader(x[:N], y[:N], idx[:N], bs=bs, shuffle=True), TensorLoader(x[N:], y[N:], idx[N:], bs=bs))
    class Record(Callback):
        order = -5                                                     # before AccelerateCB gathers the targets
        def before_fit(self): self.seen,self.n_sched = [],None
        def before_batch(self):
            if self.n_sched is None: self.n_sched = len(self.learn.dls.train)     # what a schedule sizes itself from
            if self.learn.training: self.seen += self.learn.batch[2].tolist()
    class Raise(Callback):
        def __init__(self, event, exc, at=2): self.event,self.exc,self.at = event,exc,at
        def __getattr__(self, k):
            if k == self.event: return self._go
            return super().__getattr__(k)
        def _go(self):
            if rank == n-1 and self.learn.iter == self.at: raise self.exc
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    rec,mcb = Record(),MetricsCB(accuracy=MulticlassAccuracy())
    learn = Learner(model, dls, lambda p,y,*_: F.cross_entropy(p, y), lr=0.2, cbs=[acb, rec, mcb, ProgressCB()])
    saves = []
    orig_save = torch.save
    torch.save = lambda *a, **k: (saves.append(rank), orig_save(*a, **k))[1]
    learn.fit(2)
    res = dict(rank=rank, n=n, seen=rec.seen, n_sched=rec.n_sched, history=mcb.history, last=mcb.last)
    ddp = acb.ddp
    learn.fit(1)
    res.update(same_wrapper=acb.ddp is ddp, plain_model=type(learn.model).__name__, dls_back=learn.dls is dls)
    learn.save(out/'model.pth'); learn.load(out/'model.pth')
    res['saves'] = saves
    for nm,event,exc in [('cancel_after_batch', 'after_batch', CancelFitException()),
                         ('cancel_after_loss', 'after_loss', CancelFitException()),
                         ('error_after_loss', 'after_loss', ValueError('boom'))]:
        cb = Raise(event, exc)
        try: learn.fit(2, cbs=[cb, counter := Record()]); res[nm] = 'fit ended normally'
        except (ValueError, RuntimeError) as e: res[nm] = f'{type(e).__name__}: {e}'.split('\n')[0]
        res[nm+'_batches'] = len(counter.seen)//bs
    from torch.utils.data import DataLoader, TensorDataset      # a torch DataLoader: Accelerate shards it
    tdls = DataLoaders(DataLoader(TensorDataset(x[:N], y[:N]), bs, shuffle=True),
                       DataLoader(TensorDataset(x[N:], y[N:]), bs))
    tl = Learner(model, tdls, F.cross_entropy, lr=0.2, cbs=[acb, tm := MetricsCB(accuracy=MulticlassAccuracy())])
    tl.fit(1, train=False)
    res['torch_dl'] = tm.last['accuracy']
    (out/f'res{rank}.json').write_text(json.dumps(res))


def _run(cmd, out, timeout=100):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1', 'CUDA_VISIBLE_DEVICES': ''}
    p = subprocess.Popen(cmd + [str(__file__), str(out)], env=env, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return p

def test_two_processes():
    with tempfile.TemporaryDirectory() as d1, tempfile.TemporaryDirectory() as d2:
        d1,d2 = Path(d1),Path(d2)
        ps = [_run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2'], d2),
              _run([sys.executable], d1)]
        for p in ps:
            try: log,_ = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                for q in ps: os.killpg(q.pid, signal.SIGKILL)
                pytest.fail('the processes did not finish in 120 s: a collective hangs')
            assert p.returncode == 0, log[-3000:]
        one = json.loads((d1/'res0.json').read_text())
        r0,r1 = (json.loads((d2/f'res{r}.json').read_text()) for r in (0, 1))
        # disjoint shards whose union is every item, each epoch
        for ep in range(2):
            s0,s1 = (set(r['seen'][ep*N//2:(ep+1)*N//2]) for r in (r0, r1))
            assert not s0 & s1 and s0 | s1 == set(range(N))
        assert r0['n_sched'] == r1['n_sched'] == N//(2*BS) and one['n_sched'] == N//(2*BS)    # per-process steps
        # reduced metrics == the one-process run with the same global batch
        assert r0['history'] == r1['history'] == one['history']
        for k,v in one['last'].items(): assert abs(r0['last'][k] - v) < 1e-5, (k, r0['last'], one['last'])
        assert r0['torch_dl'] == r1['torch_dl'] == one['torch_dl']        # whole validation set, repeats dropped
        assert r0['same_wrapper'] and r0['plain_model'] == 'Sequential' and r0['dls_back']
        assert r0['saves'] == [0] and r1['saves'] == []                     # only rank 0 writes the checkpoint
        assert 'accuracy' in (d2/'stdout0.txt').read_text() and (d2/'stdout1.txt').read_text() == ''  # only rank 0 prints
        # a cancel on rank 1 ends the fit on both, at the same batch; an error there stops rank 0 with a message
        for r in (r0, r1):
            assert r['cancel_after_batch'] == r['cancel_after_loss'] == 'fit ended normally'
            assert r['cancel_after_batch_batches'] == r['cancel_after_loss_batches'] == 3
        assert r1['error_after_loss'] == 'ValueError: boom'
        assert r0['error_after_loss'].startswith('RuntimeError: process [1] failed'), r0['error_after_loss']

def test_example_script_one_process():
    "examples/train_fashion.py runs in one plain process (the CPU here) on a few images, saves and reports"
    script = Path(__file__).parent.parent/'examples'/'train_fashion.py'
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        r = subprocess.run([sys.executable, str(script), '--limit', '256', '--bs', '128', '--epochs', '1',
                            '--save', str(d/'m.pth'), '--json', str(d/'r.json')], capture_output=True, text=True,
                           timeout=120, env={**os.environ, 'CUDA_VISIBLE_DEVICES': ''})
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
        res = json.loads((d/'r.json').read_text())
        assert res['n_procs'] == 1 and len(res['history']) == 2 and (d/'m.pth').exists()

if __name__ == '__main__': worker(Path(sys.argv[1]))
