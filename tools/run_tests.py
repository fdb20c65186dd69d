"Run miniai's whole test suite: sync checks, every notebook (nbdev-test, one at a time, timed), then pytest."
import os, subprocess, sys, time, re
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
from nbrun import can_fork, run_notebook

root = Path(__file__).resolve().parent.parent
os.chdir(root)
results = []  # (name, ok, seconds)

def sh(*args, **kw): return subprocess.run(args, capture_output=True, text=True, **kw)

def snapshot():
    "Tracked changes and untracked files, so we can tell whether a command changed anything."
    return sh('git', 'status', '--porcelain', '--untracked-files=all').stdout + sh('git', 'diff').stdout

def check(name, f):
    t = time.time()
    try: msg = f()
    except Exception as e: msg = f'{type(e).__name__}: {e}'
    ok = not msg
    results.append((name, ok, time.time()-t))
    print(f"{'PASS' if ok else 'FAIL'} {name} ({time.time()-t:.1f}s)" + ('' if ok else f'\n  {msg}'), flush=True)

def in_sync(cmd):
    def f():
        before = snapshot()
        r = sh(cmd)
        if r.returncode: return f'{cmd} failed:\n{r.stdout}{r.stderr}'
        after = snapshot()
        if before != after:
            changed = sh('git', 'status', '--short').stdout
            return f'{cmd} changed files (run `make export` / `nbdev-clean` and commit):\n{changed}'
    return f

def readme():
    r = sh(sys.executable, 'tools/make_readme.py', '--check')
    if r.returncode: return r.stdout + r.stderr

check('nbdev-export leaves the package unchanged', in_sync('nbdev-export'))
check('nbdev-clean leaves the notebooks unchanged', in_sync('nbdev-clean'))
check('README.md is generated from nbs/index.ipynb', readme)

only = [a for a in sys.argv[1:] if not a.startswith('--')]
fork = can_fork() and '--no-fork' not in sys.argv
nbs = sorted(p for p in (root/'nbs').glob('*.ipynb') if not only or any(o in p.name for o in only))
print(f"notebooks: nbdev-test, one at a time, {'each in a forked child of this process' if fork else 'each in a new process'}",
      flush=True)
for nb in nbs:
    t = time.time()
    ok, out = run_notebook(nb, fork)
    dt = time.time()-t
    results.append((nb.name, ok, dt))
    print(f"{'PASS' if ok else 'FAIL'} {nb.name} ({dt:.1f}s)", flush=True)
    if not ok: print(out, flush=True)
nb_total = sum(t for n,_,t in results if n.endswith('.ipynb'))
print(f'notebooks: {len(nbs)} in {nb_total:.1f}s', flush=True)

tests = root/'tests'
if not only and '--no-pytest' not in sys.argv and any(tests.glob('test_*.py')):
    t = time.time()
    r = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rf', '-p', 'no:cacheprovider', 'tests'],
                       capture_output=True, text=True)
    out = r.stdout + r.stderr
    print(out[-12000:], flush=True)
    m = dict((k, int(v)) for v,k in re.findall(r'(\d+) (passed|failed|error|errors)\b', out.splitlines()[-1] if out.strip() else ''))
    npass, nfail = m.get('passed', 0), m.get('failed', 0) + m.get('error', 0) + m.get('errors', 0)
    if r.returncode not in (0, 1) and nfail == 0: nfail = 1   # pytest itself broke (collection error, crash)
    results += [('pytest', True, 0)]*npass + [('pytest', False, 0)]*nfail
    print(f'pytest: {npass} passed, {nfail} failed in {time.time()-t:.1f}s', flush=True)

failed = [n for n,ok,_ in results if not ok]
if failed: print('failed: ' + ', '.join(failed))
print(f'{len(results)-len(failed)} passed, {len(failed)} failed')
sys.exit(1 if failed else 0)
