"""Code written for the course's own `miniai` (fastai/course22p2) runs here unchanged: `def_device` as a value,
`DataLoaders.from_dd(dd, bs, num_workers=...)` with or without a `with_transform`, the course's argument order of
`lsuv_init`, `conv`/`get_model` with the course's meaning, `clean_mem`, and seeds from NumPy. The last tests run
lesson code in the course's own words (notebooks 10 and 11) on a small synthetic image set."""
import subprocess, sys, textwrap
from functools import partial

import numpy as np, pytest, torch, torch.nn.functional as F
from torch import nn

def run_py(code:str):
    "Run `code` in a fresh interpreter (nothing imported yet); return its stdout, failing with its stderr"
    r = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout

# --- def_device: a value, worked out when first read ---------------------------------------------------------------

@pytest.fixture(scope='module')
def fresh():
    "What a fresh interpreter reports: one subprocess (torch imports once) for every check that needs a clean start"
    out = run_py("""
    import torch
    from unittest import mock
    asked = []
    def spy(*a): asked.append(1); return False
    with mock.patch('torch.cuda.is_available', spy), mock.patch('torch.backends.mps.is_available', spy):
        import miniai.conv
        print('conv import asked', len(asked))
        from miniai.conv import def_device
        print('def_device read asked', len(asked) > 0)
        n = len(asked); miniai.conv.def_device
        print('read again asked', len(asked) - n)
        import miniai.datasets, miniai.learner, miniai.activations, miniai.init
        print('package import asked', len(asked) - n)
    print('def_device', type(def_device).__name__, def_device.type)
    ns = {}; exec('from miniai.conv import *', ns)
    print('star import', type(ns['def_device']).__name__, callable(ns['default_device']))
    import sys
    from miniai.init import clean_mem
    try: from IPython import get_ipython; shell = get_ipython() is not None
    except ImportError: shell = False
    print('in ipython', shell)
    clean_mem()
    print('clean_mem ok')
    """)
    return dict(l.rsplit(' ', 1) if l.count(' ') else (l, '') for l in out.splitlines())

def test_def_device_is_read_lazily(fresh):
    assert fresh['conv import asked'] == '0'                                  # importing asks no device
    assert fresh['def_device read asked'] == 'True'                           # reading the name does
    assert fresh['read again asked'] == '0'                                   # once: the value is kept
    assert fresh['def_device device'] == 'cpu'                                 # (CUDA and MPS were mocked away)

def test_importing_the_package_asks_for_no_device(fresh):
    assert fresh['package import asked'] == '0'

def test_def_device_star_import(fresh):
    assert fresh['star import device'] == 'True'

def test_def_device_used_as_the_course_uses_it():
    from miniai.conv import def_device, default_device, to_device
    assert isinstance(def_device, torch.device) and def_device == default_device()
    model = nn.Linear(3, 2).to(def_device)                                   # model.to(def_device)
    xb = torch.randn(4, 3).to(def_device)                                    # xb.to(def_device)
    b = to_device((xb.cpu(), torch.zeros(4)), def_device)                    # to_device(b, def_device)
    assert model(xb).device.type == b[0].device.type == def_device.type
    with pytest.raises(AttributeError, match="has no attribute 'def_devcie'"):
        import miniai.conv; miniai.conv.def_devcie

# --- DataLoaders.from_dd, with and without a with_transform ----------------------------------------------------------

def small_dd(n=40, nv=20, seed=0):
    "A 🤗 DatasetDict of random 28×28 gray images in PNG form with labels 0-9, like Fashion-MNIST's"
    from datasets import ClassLabel, Dataset as HFDataset, DatasetDict, Features, Image as HFImage
    rng = np.random.default_rng(seed)
    feats = Features({'image': HFImage(), 'label': ClassLabel(num_classes=10)})
    def split(k): return HFDataset.from_dict({'image': [rng.integers(0, 256, (28, 28), dtype=np.uint8) for _ in range(k)],
                                              'label': rng.integers(0, 10, k).tolist()}, features=feats)
    return DatasetDict(train=split(n), test=split(nv))

def to_tensor(im): return torch.from_numpy(np.array(im, dtype=np.float32)/255)[None]   # torchvision's, for gray images

@pytest.mark.parametrize('num_workers', [0, 2])
def test_from_dd_keeps_the_course_transform(num_workers):
    "The course's 09/10 cells: `@inplace def transformi`, `dsd.with_transform(transformi)`, `from_dd(tds, bs, num_workers=4)`"
    from miniai.datasets import DataLoaders, inplace
    dsd = small_dd()
    x, y = 'image', 'label'
    @inplace
    def transformi(b): b[x] = [torch.flatten(to_tensor(o)) for o in b[x]]
    tds = dsd.with_transform(transformi)
    dls = DataLoaders.from_dd(tds, 8, num_workers=num_workers)
    xb, yb = next(iter(dls.train))
    assert xb.shape == (8, 784) and xb.dtype == torch.float32 and yb.shape == (8,)
    assert dls.train.num_workers == dls.valid.num_workers == num_workers
    xv, yv = next(iter(dls.valid))
    assert torch.equal(xv, torch.stack([torch.flatten(to_tensor(o)) for o in dsd['test'][:16][x]]))
    assert torch.equal(yv, torch.tensor(dsd['test'][:16][y]))

def test_from_dd_without_a_transform_accepts_num_workers():
    from miniai.datasets import DataLoaders, TensorLoader
    dsd = small_dd()
    dls = DataLoaders.from_dd(dsd, 8, num_workers=4)
    assert isinstance(dls.train, TensorLoader)                               # the in-memory path: workers have nothing to do
    xb, yb = next(iter(dls.train))
    assert xb.shape == (8, 1, 28, 28) and xb.dtype == torch.float32
    assert torch.equal(next(iter(dls.valid))[0], next(iter(DataLoaders.from_dd(dsd, 8, fast=False).valid))[0])

def test_from_dd_as_tuple_positional():
    from miniai.datasets import DataLoaders
    dls = DataLoaders.from_dd(small_dd(), 4, True)                           # the course's (dd, batch_size, as_tuple)
    assert len(next(iter(dls.train))) == 2
    db = next(iter(DataLoaders.from_dd(small_dd(), 4, False).train))
    assert set(db) == {'image', 'label'}

def test_from_dd_never_drops_a_transform():
    from miniai.datasets import DataLoaders, inplace
    @inplace
    def tfm(b): b['image'] = [to_tensor(o) for o in b['image']]
    with pytest.raises(ValueError, match='drop its with_transform'):
        DataLoaders.from_dd(small_dd().with_transform(tfm), 4, fast=True)

# --- 11's helpers with the course's arguments ------------------------------------------------------------------------

def test_lsuv_init_course_argument_order():
    "`lsuv_init(model, m, m_in, xb)`: `m` measured (the relu), `m_in` rescaled (the conv before it)"
    from miniai.init import lsuv_init, GeneralRelu
    torch.manual_seed(0)
    relu = partial(GeneralRelu, leak=0.1, sub=0.4)          # the course's relu: a plain ReLU's output cannot have mean 0
    model = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2), relu(), nn.Conv2d(8, 4, 3, stride=2), relu())
    relu, conv_ = model[1], model[0]
    xb = torch.randn(64, 1, 16, 16)*3 + 1
    lsuv_init(model, relu, conv_, xb)
    with torch.no_grad(): out = model[:2](xb)
    assert abs(out.mean().item()) < 1e-2 and abs(out.std().item() - 1) < 1e-2
    with pytest.raises(TypeError, match=r'the arguments are \(model, m, m_in, xb\)'):
        lsuv_init(model, conv_, relu, xb)                                       # the old order fails, not silently

def test_conv_and_get_model_course_signatures():
    from miniai.conv import conv
    from miniai.init import get_model, conv as init_conv, GeneralRelu
    assert init_conv is conv                                                  # one `conv`, reachable from both modules
    c = conv(1, 8, 3, 2, nn.ReLU, nn.BatchNorm2d)                            # positional, as the course's signature
    assert [type(m) for m in c] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU] and c[0].bias is None
    assert conv(1, 8, act=None)[0].bias is not None and len(conv(1, 8, act=None)) == 1
    m = get_model(partial(GeneralRelu, leak=0.1, sub=0.4), norm=nn.BatchNorm2d)
    assert [l[0].in_channels for l in m[:-1]] == [1, 8, 16, 32, 64]
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert get_model(nfs=[1, 16, 32, 64, 128])[3][0].out_channels == 128

def test_clean_mem_outside_ipython():
    from miniai.init import clean_ipython_hist, clean_mem, clean_tb
    try: raise RuntimeError('pretend: CUDA out of memory')
    except RuntimeError as e: sys.last_type, sys.last_value, sys.last_traceback = type(e), e, e.__traceback__
    clean_mem()
    assert not hasattr(sys, 'last_traceback') and not hasattr(sys, 'last_value')
    clean_tb(); clean_ipython_hist(); clean_mem()                             # nothing to clean: no error


def test_clean_mem_in_a_plain_script(fresh):
    assert fresh['in ipython'] == 'False' and fresh['clean_mem'] == 'ok'       # no IPython shell: nothing to clean, no error

def test_set_seed_takes_numpy_integers():
    from miniai.activations import set_seed
    import random
    def draws(): return random.random(), np.random.rand(), torch.rand(1).item()
    set_seed(3); a = draws()
    set_seed(np.int64(3)); assert draws() == a
    set_seed(np.uint8(3)); assert draws() == a
    set_seed(torch.tensor(3)); assert draws() == a
    with pytest.raises(TypeError, match='seed must be an int'): set_seed(3.0)

# --- lesson code in the course's own words ------------------------------------------------------------------------------

def image_dls(n=256, nv=128, bs=64):
    "Random 1×28×28 images whose class is the brightest of ten horizontal bands: a CNN learns it in one epoch"
    from miniai.datasets import DataLoaders, TensorLoader
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n+nv, 1, 28, 28, generator=g)*0.5
    y = torch.randint(0, 10, (n+nv,), generator=g)
    for i, c in enumerate(y.tolist()): x[i, 0, c*2:c*2+3] += 0.5
    return DataLoaders(TensorLoader(x[:n], y[:n], bs=bs, shuffle=True), TensorLoader(x[n:], y[n:], bs=bs*2))

def test_course_10_activations_cells():
    "Course 10_activations: `conv`, `cnn_layers`, `fit` with a Learner and callbacks, `set_seed`, hooks, `ActivationStats`"
    import fastcore.all as fc
    from torcheval.metrics import MulticlassAccuracy
    from miniai.conv import conv, def_device
    from miniai.learner import Learner, TrainCB, DeviceCB, MetricsCB, ProgressCB
    from miniai.activations import set_seed, Hook, Hooks, HooksCallback, ActivationStats, append_stats, get_hist, get_min
    dls = image_dls()
    def cnn_layers():
        return [conv(1, 8, ks=5), conv(8, 16), conv(16, 32), conv(32, 64), conv(64, 10, act=False), nn.Flatten()]
    metrics = MetricsCB(accuracy=MulticlassAccuracy())
    cbs = [TrainCB(), DeviceCB(), metrics, ProgressCB(plot=False)]
    def fit(model, epochs=1, xtra_cbs=None):
        learn = Learner(model, dls, loss_func=F.cross_entropy, lr=0.2, cbs=cbs+fc.L(xtra_cbs))
        learn.fit(epochs)
        return learn
    set_seed(1)
    model = nn.Sequential(*cnn_layers()).to(def_device)
    hooks = [Hook(l, append_stats) for l in model[:5]]                        # the course's Hook(m, f)
    fit(model)
    for h in hooks: h.remove()
    assert all(len(h.stats[0]) >= len(dls.train) for h in hooks)              # one entry per batch it saw
    with Hooks(model[:3], append_stats) as hs:
        model(next(iter(dls.valid))[0].to(def_device))
        assert len(hs) == 3 and all(len(h.stats[0]) == 1 for h in hs)
    hc = HooksCallback(append_stats, mod_filter=fc.risinstance(nn.Conv2d))
    fit(nn.Sequential(*cnn_layers()), xtra_cbs=[hc])
    assert len(list(hc)) == 5
    astats = ActivationStats(fc.risinstance(nn.ReLU))
    fit(nn.Sequential(*cnn_layers()), xtra_cbs=[astats])
    h = list(astats)[0]
    assert get_hist(h).shape[0] == 40 and get_min(h).shape == (len(dls.train),)

def test_course_11_initializing_cells():
    "Course 11_initializing: GeneralRelu, init_weights, get_model, LSUV with `def_device`, a MomentumLearner fit"
    import fastcore.all as fc
    from torcheval.metrics import MulticlassAccuracy
    from miniai.conv import def_device
    from miniai.learner import MomentumLearner, DeviceCB, MetricsCB, ProgressCB
    from miniai.activations import set_seed, ActivationStats
    from miniai.init import GeneralRelu, init_weights, get_model, lsuv_init, plot_func, clean_mem
    dls = image_dls()
    xb, yb = next(iter(dls.train))
    act_gr = partial(GeneralRelu, leak=0.1, sub=0.4)
    iw = partial(init_weights, leaky=0.1)
    set_seed(42)
    model = get_model(act_gr)
    relus = [o for o in model.modules() if isinstance(o, GeneralRelu)]
    convs = [o for o in model.modules() if isinstance(o, nn.Conv2d)]
    for ms in zip(relus, convs): lsuv_init(model, *ms, xb.to(def_device))
    with torch.no_grad(): out = model[:1](xb)
    assert abs(out.mean().item()) < 0.01 and abs(out.std().item() - 1) < 0.01
    metrics = MetricsCB(accuracy=MulticlassAccuracy())
    astats = ActivationStats(fc.risinstance(GeneralRelu))
    cbs = [DeviceCB(), metrics, ProgressCB(plot=False), astats]
    model = get_model(act_gr, norm=nn.BatchNorm2d).apply(iw)
    learn = MomentumLearner(model, dls, F.cross_entropy, lr=0.2, cbs=cbs)
    learn.fit(1)
    assert len(list(astats)) == 4
    plot_func(act_gr()); clean_mem()

@pytest.mark.filterwarnings('ignore:the loss was lowest')   # random images: lr_find's suggestion means little
def test_course_09_learner_cells(capsys):
    "Course 09_learner: a with_transform'd DatasetDict with workers, a `learn`-style callback, metrics, momentum, lr_find"
    from torcheval.metrics import MulticlassAccuracy
    from miniai.datasets import DataLoaders, inplace
    from miniai.learner import (Callback, Learner, TrainCB, DeviceCB, MetricsCB, ProgressCB, TrainLearner,
                                MomentumLearner, SingleBatchCB)
    x, y = 'image', 'label'
    @inplace
    def transformi(b): b[x] = [torch.flatten(to_tensor(o)) for o in b[x]]
    dls = DataLoaders.from_dd(small_dd(64, 32).with_transform(transformi), 16, num_workers=2)
    m, nh = 28*28, 50
    def get_model(): return nn.Sequential(nn.Linear(m, nh), nn.ReLU(), nn.Linear(nh, 10))
    class CompletionCB(Callback):
        def before_fit(self, learn): self.count = 0
        def after_batch(self, learn): self.count += 1
        def after_fit(self, learn): print(f'Completed {self.count} batches')
    cbs = [TrainCB(), CompletionCB()]
    learn = Learner(get_model(), dls, F.cross_entropy, lr=0.2, cbs=cbs)
    learn.fit(1)
    assert 'Completed 5 batches' in capsys.readouterr().out                   # 4 training batches of 16, 1 validation of 32
    metrics = MetricsCB(accuracy=MulticlassAccuracy())
    cbs = [TrainCB(), DeviceCB(), metrics, ProgressCB(plot=True)]
    learn = Learner(get_model(), dls, F.cross_entropy, lr=0.2, cbs=cbs)
    learn.fit(2)
    learn = MomentumLearner(get_model(), dls, F.cross_entropy, lr=0.1, cbs=[DeviceCB(), metrics])
    learn.fit(1)
    TrainLearner(get_model(), dls, F.cross_entropy, cbs=[DeviceCB(), SingleBatchCB()]).fit(1)
    learn = MomentumLearner(get_model(), dls, F.cross_entropy, cbs=[DeviceCB()])
    learn.lr_find()
    learn.lr_find(gamma=1.1, max_mult=3, start_lr=1e-4, max_epochs=3)
