"""GraphStepCB on a GPU (skipped without one): a model that waits for the CPU cannot be recorded as a CUDA graph, and
the error says so and names the fix. Run in a child process: a failed capture can leave the CUDA context unusable."""
import subprocess, sys, textwrap
import pytest, torch

CODE = textwrap.dedent('''
    import torch, torch.nn.functional as F
    from torch import nn
    from miniai.accel import GraphStepCB
    from miniai.learner import Learner, DeviceCB
    from miniai.datasets import DataLoaders, TensorLoader
    class Syncs(nn.Module):                       # reads a value back to the CPU each forward pass
        def __init__(self): super().__init__(); self.lin = nn.Linear(8, 2)
        def forward(self, x): return self.lin(x) * (1 + 0*x.sum().item())
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    dls = DataLoaders(TensorLoader(x, y, bs=16), TensorLoader(x, y, bs=16))
    Learner(Syncs(), dls, F.cross_entropy, cbs=[DeviceCB('cuda'), GraphStepCB(compile=False)]).fit(1)
''')

@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
def test_unrecordable_model_names_the_fix():
    r = subprocess.run([sys.executable, '-c', CODE], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0
    assert 'GraphStepCB could not record the step as a CUDA graph' in r.stderr, r.stderr[-3000:]
    assert 'CompileCB() or TrainCB() instead' in r.stderr
