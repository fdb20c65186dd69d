"Shared by the benchmarks: a calibration probe, alternated paired runs, medians and ratios."
import platform, statistics, subprocess, time
import torch

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

_probe_a = None
def probe() -> float:
    "Seconds for a small fixed CPU workload (matmuls + Python loop): tells a slowed-down machine from a slow variant"
    global _probe_a
    if _probe_a is None:
        g = torch.Generator().manual_seed(0)
        _probe_a = torch.randn(256, 256, generator=g)
    t = time.perf_counter()
    x = _probe_a
    for _ in range(20): x = (x @ _probe_a).tanh_()
    s = 0
    for i in range(100_000): s += i
    return time.perf_counter() - t

def paired(variants:dict, n:int, slow_factor:float=1.5, sync=None):
    """Run each of `variants` (name -> fn) `n` times, alternating their order, each bracketed by the probe.
    Runs whose probe was > `slow_factor` x the fastest probe are dropped and counted. Returns (times, dropped)."""
    times, probes = {k: [] for k in variants}, {k: [] for k in variants}
    names = list(variants)
    for i in range(n):
        for k in (names if i % 2 == 0 else names[::-1]):
            p0 = probe()
            if sync: sync()
            t = time.perf_counter(); variants[k](); 
            if sync: sync()
            dt = time.perf_counter() - t
            p1 = probe()
            times[k].append(dt); probes[k].append(max(p0, p1))
    best = min(min(v) for v in probes.values())
    keep = [all(probes[k][i] <= slow_factor*best for k in names) for i in range(n)]
    kept = {k: [t for t,ok in zip(v, keep) if ok] for k,v in times.items()}
    return kept, keep.count(False), best

def summarize(kept:dict, base:str, other:str, dropped:int, probe_best:float):
    "Print medians and the paired ratios; end with `ratio=<x>` (median of other/base per pair)"
    if not kept[base]: print('every run was taken while the machine was slowed down; try again later'); print('ratio=nan'); return float('nan')
    for k,v in kept.items(): print(f'{k:>28}: median {statistics.median(v):.3f}s over {len(v)} runs  ({", ".join(f"{o:.3f}" for o in v)})')
    ratios = [o/b for b,o in zip(kept[base], kept[other])]
    r = statistics.median(ratios)
    print(f'paired ratios {other}/{base}: ' + ', '.join(f'{o:.3f}' for o in ratios))
    print(f'calibration probe: best {probe_best*1000:.1f} ms; runs dropped as taken on a slowed-down machine: {dropped}')
    print(f'ratio={r:.3f}')
    return r
