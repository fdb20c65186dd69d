"""Run one notebook's tests with `nbdev-test`, either in a new process or in a child forked from this process after
the heavy imports (torch, IPython, nbdev, miniai) are done once. Used by `tools/run_tests.py` and `bench/suite.py`."""
import os, subprocess, sys, tempfile, traceback
from pathlib import Path

def can_fork() -> bool:
    "Forking is used on Linux only (macOS and Windows start processes differently)"
    return hasattr(os, 'fork') and sys.platform.startswith('linux')

def nbtest_subprocess(nb):
    "Run `nbdev-test` on `nb` in a new process: (ok, output)"
    r = subprocess.run(['nbdev-test', str(nb)], capture_output=True, text=True)
    return r.returncode == 0, r.stdout[-4000:] + r.stderr[-8000:]

_warm = False
def nbtest_forked(nb):
    """Run `nbdev-test` on `nb` in a child forked from this process, which has imported torch, IPython, nbdev and miniai
    once: each notebook still gets a process of its own (nothing it changes leaks into the next), without paying
    ~3 s of interpreter start and imports again. Nothing here runs a torch op before forking, so no OpenMP thread pool
    is copied into the children. (`datasets`/pyarrow are left for the children to import: they can start threads.)"""
    global _warm
    if not _warm:
        import torch, matplotlib.pyplot, IPython, execnb.shell, nbdev.test, fastcore.all, torcheval.metrics  # noqa: F401
        import miniai.learner, miniai.conv, miniai.fashion_mnist  # noqa: F401
        _warm = True
    with tempfile.TemporaryFile('w+') as log:
        sys.stdout.flush(); sys.stderr.flush()
        pid = os.fork()
        if pid == 0:                                   # the child: run the notebook, exit with its status
            code = 1
            try:
                os.dup2(log.fileno(), 1); os.dup2(log.fileno(), 2)
                from nbdev.test import nbdev_test
                nbdev_test(path=str(nb))
                code = 0
            except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
            except BaseException: traceback.print_exc()
            finally:
                sys.stdout.flush(); sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        log.seek(0)
        out = log.read()
    return os.waitstatus_to_exitcode(status) == 0, out[-12000:]

def run_notebook(nb:Path, # the notebook to test
                 fork:bool=True, # run it in a forked child of this process (Linux), else in a new `nbdev-test` process
                ) -> tuple:
    "Test `nb` with nbdev-test: `(ok, the end of its output)`"
    return nbtest_forked(nb) if fork and can_fork() else nbtest_subprocess(nb)
