"Shared by the benchmarks: a calibration probe, alternated paired runs, medians and ratios."
import platform, statistics, subprocess, time
import torch, torch.nn.functional as F

def machine() -> str:
    "CPU model (and GPU name when CUDA is used), for BENCHMARKS.md"
    cpu = platform.processor() or ''
    try:
        for l in open('/proc/cpuinfo'):
            if l.startswith('model name'): cpu = l.split(':', 1)[1].strip(); break
    except OSError: pass
    res = f'{cpu}, {torch.get_num_threads()} torch threads, torch {torch.__version__}'
    if torch.cuda.is_available(): res += f', GPU {torch.cuda.get_device_name()}'
    return res

def probe() -> float:
    """Seconds for a small fixed single-threaded workload (a pure-Python loop): tells a slowed-down machine from a slow
    variant. Single-threaded so that the number of cores and their scheduling does not change what it measures."""
    t = time.perf_counter()
    s = 0
    for i in range(300_000): s += i*i % 7
    return time.perf_counter() - t

def paired(variants:dict, n:int, slow_factor:float=2.0, sync=None):
    """Run each of `variants` (name -> fn) `n` times, alternating their order, each bracketed by the probe.
    A pair is dropped (and counted) when a probe around it took > `slow_factor` x the median probe: the machine was
    slowed down (these VMs are shared and sometimes run 15-20x slower for minutes). Returns (times, dropped, probe)."""
    times, probes = {k: [] for k in variants}, {k: [] for k in variants}
    names = list(variants)
    for i in range(n):
        for k in (names if i % 2 == 0 else names[::-1]):
            p0 = probe()
            if sync: sync()
            t = time.perf_counter(); variants[k]()
            if sync: sync()
            dt = time.perf_counter() - t
            p1 = probe()
            times[k].append(dt); probes[k].append(max(p0, p1))
    med = statistics.median([o for v in probes.values() for o in v])
    keep = [all(probes[k][i] <= slow_factor*med for k in names) for i in range(n)]
    kept = {k: [t for t,ok in zip(v, keep) if ok] for k,v in times.items()}
    return kept, keep.count(False), med

def summarize(kept:dict, base:str, other:str, dropped:int, probe_best:float):
    "Print medians and the paired ratios; end with `ratio=<x>` (median of other/base per pair)"
    if not kept[base]: print('every run was taken while the machine was slowed down; try again later'); print('ratio=nan'); return float('nan')
    for k,v in kept.items(): print(f'{k:>28}: median {statistics.median(v):.3f}s over {len(v)} runs  ({", ".join(f"{o:.3f}" for o in v)})')
    ratios = [o/b for b,o in zip(kept[base], kept[other])]
    r = statistics.median(ratios)
    print(f'paired ratios {other}/{base}: ' + ', '.join(f'{o:.3f}' for o in ratios))
    print(f'calibration probe: median {probe_best*1000:.1f} ms; runs dropped as taken on a slowed-down machine: {dropped}')
    print(f'ratio={r:.3f}')
    return r

def hand_loops(xt, yt, xv, yv, bs:int, fresh, dls):
    """The hand-written epoch of the Learner benchmarks (train on a shuffled index of `xt` on its device, then a
    validation pass) and the same loop fed by `dls` (a `DataLoaders` of `TensorLoader`s); `fresh()` makes the model"""
    def hand():
        model = fresh(); opt = torch.optim.SGD(model.parameters(), lr=0.1); model.train()
        idx = torch.randperm(len(xt), device=xt.device)
        for i in range(0, len(xt), bs):
            j = idx[i:i+bs]; xb, yb = xt[j][:, None].float().div_(255), yt[j]
            F.cross_entropy(model(xb), yb).backward(); opt.step(); opt.zero_grad()
        model.eval()
        with torch.no_grad():
            for i in range(0, len(xv), bs*2): model(xv[i:i+bs*2][:, None].float().div_(255))
    def hand_tl():
        model = fresh(); opt = torch.optim.SGD(model.parameters(), lr=0.1); model.train()
        for xb, yb in dls.train: F.cross_entropy(model(xb), yb).backward(); opt.step(); opt.zero_grad()
        model.eval()
        with torch.no_grad():
            for xb, yb in dls.valid: model(xb)
    return hand, hand_tl
