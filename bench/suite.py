"""Time the notebook suite the way the test command runs it (`nbdev-test` on each notebook, one at a time, each in a
child forked after the heavy imports unless --no-fork: `tools/nbrun.py`), each
notebook bracketed by the calibration probe. Prints per-notebook seconds and the total; a notebook timed while the
machine was slowed down (probe > 2x the first probe) is flagged. Ends with `total=<seconds>`."""
import argparse, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent/'tools'))
from _common import machine, probe
from nbrun import can_fork, run_notebook

root = Path(__file__).resolve().parent.parent
p = argparse.ArgumentParser(description=__doc__)
p.add_argument('names', nargs='*', help='only notebooks whose name contains one of these')
p.add_argument('--no-fork', action='store_true', help='start a new nbdev-test process for each notebook')
a = p.parse_args()
nbs = sorted(o for o in (root/'nbs').glob('*.ipynb') if not a.names or any(n in o.name for n in a.names))
print(f'machine: {machine()}; notebooks run', 'in new processes' if a.no_fork or not can_fork() else 'in forked children')
ref = min(probe() for _ in range(3))
total, slow = 0., []
for nb in nbs:
    p0 = probe()
    t = time.perf_counter()
    ok, _ = run_notebook(nb, fork=not a.no_fork)
    dt = time.perf_counter() - t
    p1 = probe()
    flag = max(p0, p1) > 2*ref
    if flag: slow.append(nb.name)
    total += dt
    print(f"{nb.name:32} {dt:7.1f}s  {'ok' if ok else 'FAILED'}{'  (machine slowed down: probe %.0fx)' % (max(p0,p1)/ref) if flag else ''}", flush=True)
print(f'calibration probe {ref*1000:.1f} ms; notebooks timed while slowed down: {len(slow)} {slow if slow else ""}')
print(f'total={total:.1f}')
