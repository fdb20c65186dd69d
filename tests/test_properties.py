"""Property-based tests (hypothesis, derandomized in conftest.py): the invariants of the batch pipeline, of moving
nested batches between devices and of the hyperparameter schedules; and oracle tests, where PIL (PNG decoding), the
per-item data path, or PyTorch's functional norms give the right answer for random inputs.

The samplers checked are the ones the package uses: `TensorLoader`'s per-epoch `randperm` index and slicing, and the
torch `RandomSampler`/`BatchSampler` behind `get_dls`. (04's hand-built `Sampler`/`BatchSampler` are drafts inside
that notebook, not exported; the notebook has its own assertions for them.)"""
import io, math, struct, zlib
from collections import OrderedDict, namedtuple
from functools import partial

import numpy as np, pytest, torch, torch.nn.functional as F
from hypothesis import given, settings, strategies as st
from torch.utils.data import BatchSampler, RandomSampler, SequentialSampler

from miniai.conv import to_device
from miniai.datasets import TensorLoader, collate_dict
from miniai.performance import decode_images, take_rows
from miniai.learner import to_cpu
from miniai.training import Dataset, collate, fetch_batch, get_dls

sizes = st.integers(0, 130)
bss = st.integers(1, 40)

def epoch_indices(dl):
    "The item indices of one epoch of `dl` (a loader over `arange(n)` as its first tensor), batch by batch"
    return [b[0].tolist() for b in dl]

def check_epoch(batches, n, bs, drop_last, n_batches):
    "Every index at most once; all of them unless drop_last; full batches except maybe the last; `len(dl)` batches"
    flat = [i for b in batches for i in b]
    assert len(batches) == n_batches
    assert len(flat) == len(set(flat)) and set(flat) <= set(range(n))
    if drop_last: assert len(flat) == n//bs*bs and all(len(b) == bs for b in batches)
    else:
        assert sorted(flat) == list(range(n))
        assert all(len(b) == bs for b in batches[:-1]) and (not batches or 1 <= len(batches[-1]) <= bs)

@given(n=sizes, bs=bss, shuffle=st.booleans(), drop_last=st.booleans(), seed=st.integers(0, 2**16))
def test_tensor_loader_serves_each_index_once(n, bs, shuffle, drop_last, seed):
    torch.manual_seed(seed)
    dl = TensorLoader(torch.arange(n), bs=bs, shuffle=shuffle, drop_last=drop_last)
    e1, e2 = epoch_indices(dl), epoch_indices(dl)
    for e in (e1, e2): check_epoch(e, n, bs, drop_last, len(dl))
    assert len(dl.dataset) == n
    if not shuffle: assert [i for b in e1 for i in b] == list(range(len(dl)*bs))[:n]   # in order

@given(n=st.integers(1, 60), w=st.sampled_from([1, 3, 8, 16, 24, 28]), dtype=st.sampled_from([torch.uint8, torch.int16,
       torch.float32]), view=st.sampled_from(['whole', 'offset', 'columns', '3d']), bs=bss, seed=st.integers(0, 2**16))
def test_tensor_loader_rows_match_their_index(n, w, dtype, view, bs, seed):
    "The gathered rows (8-byte word gather for uint8/int16 rows, index_select otherwise) are `x[idx]` exactly, for views too"
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 100, (n+1, w+2), generator=g).to(dtype)
    x = {'whole': x[:n, :w].contiguous(), 'offset': x[1:], 'columns': x[:n, 1:w+1],
         '3d': x[:n, :w].contiguous().view(n, 1, w)}[view][:n]   # 'offset': storage offset; 'columns': not contiguous
    y = torch.arange(n)
    torch.manual_seed(seed)
    for xb, yb in TensorLoader(x, y, bs=bs, shuffle=True):
        assert xb.dtype == dtype and torch.equal(xb, x[yb])

@given(n=st.integers(1, 40), idx=st.lists(st.integers(0, 39), max_size=20))
def test_take_rows_is_indexing(n, idx):
    x = torch.arange(n*8, dtype=torch.uint8).view(n, 8)
    i = torch.tensor([j % n for j in idx], dtype=torch.long)
    assert torch.equal(take_rows(x, i), x[i])

@given(n=st.integers(1, 130), bs=bss, drop_last=st.booleans(), seed=st.integers(0, 2**16))
def test_torch_samplers_of_get_dls(n, bs, drop_last, seed):
    "The samplers behind get_dls: shuffled training batches, in-order validation batches of 2*bs"
    ds = Dataset(torch.arange(n), torch.arange(n))
    trn, val = get_dls(ds, ds, bs, drop_last=drop_last)
    torch.manual_seed(seed)
    check_epoch(epoch_indices(trn), n, bs, drop_last, len(trn))
    vb = epoch_indices(val)
    check_epoch(vb, n, 2*bs, drop_last, len(val))
    assert [i for b in vb for i in b] == list(range(len(vb) and sum(map(len, vb))))

@given(n=st.integers(1, 130), bs=bss, drop_last=st.booleans(), shuffle=st.booleans())   # torch's RandomSampler needs n >= 1
def test_batch_sampler_with_fetch_batch(n, bs, drop_last, shuffle):
    "BatchSampler indices through fetch_batch (per item + collate, or one indexing) give the same batches"
    x, y = torch.randn(n, 3), torch.arange(n)
    ds = Dataset(x, y)
    sampler = (RandomSampler if shuffle else SequentialSampler)(ds)
    bsamp = list(BatchSampler(sampler, bs, drop_last))
    check_epoch(bsamp, n, bs, drop_last, len(BatchSampler(sampler, bs, drop_last)))
    for idxs in bsamp:
        xb, yb = fetch_batch(ds, idxs)
        xb2, yb2 = fetch_batch(ds, torch.tensor(idxs), collate_fn=None)
        assert torch.equal(xb, x[idxs]) and torch.equal(yb, torch.tensor(idxs)) and torch.equal(xb, xb2) and torch.equal(yb, yb2)

shapes = st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple)

@given(n=st.integers(1, 10), shapes=st.lists(shapes, min_size=1, max_size=4))
def test_collate_stacks_each_field(n, shapes):
    items = [tuple(torch.full(s, float(i*10+j)) for j, s in enumerate(shapes)) for i in range(n)]
    b = collate(items)
    assert isinstance(b, tuple) and len(b) == len(shapes)
    for j, (t, s) in enumerate(zip(b, shapes)):
        assert t.shape == (n, *s)
        for i in range(n): assert torch.equal(t[i], items[i][j])

@given(n=st.integers(1, 8), names=st.lists(st.sampled_from(['image', 'label', 'x', 'y', 'w']), min_size=1,
       max_size=5, unique=True), order=st.permutations(range(5)))
def test_collate_dict_keeps_the_feature_order(n, names, order):
    "Items whose dicts have the keys in any order collate to a tuple in the order of the dataset's features"
    keys = [names[i] for i in order if i < len(names)]
    items = [{k: torch.tensor([i, names.index(k)]) for k in keys} for i in range(n)]
    b = collate_dict(names)(items)
    assert len(b) == len(names)
    for j, (t, k) in enumerate(zip(b, names)):
        assert t.shape == (n, 2) and t[:, 1].eq(j).all() and torch.equal(t[:, 0], torch.arange(n))

# --- nested structures on devices ---------------------------------------------------------------------------------

Pair = namedtuple('Pair', 'a b')
tensors = st.builds(lambda s, dt, g: torch.zeros(s, dtype=dt).requires_grad_(g and dt.is_floating_point),
                    shapes, st.sampled_from([torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.bool]),
                    st.booleans())
leaves = tensors | st.integers() | st.text(max_size=3) | st.none()
nested = st.recursive(leaves, lambda c: st.lists(c, max_size=3) | st.lists(c, max_size=3).map(tuple)
                      | st.dictionaries(st.text(max_size=2), c, max_size=3)
                      | st.dictionaries(st.text(max_size=2), c, max_size=3).map(OrderedDict)
                      | st.builds(Pair, c, c), max_leaves=12)

def same_structure(a, b, leaf):
    "`a` and `b` have the same containers (types, keys, order); `leaf(x, y)` holds for each pair of leaves"
    assert type(a) is type(b)
    if isinstance(a, dict):
        assert list(a) == list(b)
        for k in a: same_structure(a[k], b[k], leaf)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b): same_structure(x, y, leaf)
    else: leaf(a, b)

@given(x=nested)
def test_to_device_on_nested_structures(x):
    "Every tensor moves (here to 'meta', a device without data, standing in for a GPU); other leaves are kept"
    def leaf(a, b):
        if isinstance(a, torch.Tensor): assert b.device.type == 'meta' and b.shape == a.shape and b.dtype == a.dtype
        else: assert b is a
    same_structure(x, to_device(x, 'meta'), leaf)
    def same(a, b): assert torch.equal(a, b) if isinstance(a, torch.Tensor) else b is a
    same_structure(x, to_device(x, 'cpu'), same)

@given(x=nested)
def test_to_cpu_on_nested_structures(x):
    "Detached, on the CPU, half precision widened to float32, values kept; containers keep their types"
    def leaf(a, b):
        if isinstance(a, torch.Tensor):
            assert b.device.type == 'cpu' and not b.requires_grad and b.shape == a.shape
            assert b.dtype == (torch.float32 if a.dtype in (torch.float16, torch.bfloat16) else a.dtype)
            assert torch.equal(b, a.detach().to(b.dtype))
        else: assert b is a
    same_structure(x, to_cpu(x), leaf)

# --- schedules -------------------------------------------------------------------------------------------------

try: import miniai.annealing as ann
except ImportError: ann = None
needs_ann = pytest.mark.skipif(ann is None, reason='miniai.annealing (nbs/12a_annealing) is not there yet')
vals = st.floats(-10, 10, allow_nan=False).filter(lambda v: abs(v) > 1e-3)
poss = st.floats(0, 1)

@needs_ann
@given(start=vals, end=vals, pos=poss, name=st.sampled_from(['sched_lin', 'sched_cos', 'sched_no']))
def test_schedule_within_bounds(start, end, pos, name):
    f = getattr(ann, name)(start, end)
    lo, hi = min(start, end), max(start, end)
    assert lo - 1e-9 <= f(pos) <= hi + 1e-9
    assert f(0.) == start and math.isclose(f(1.), start if name == 'sched_no' else end, abs_tol=1e-9)

@needs_ann
@given(start=st.floats(1e-4, 10), end=st.floats(1e-4, 10), sign=st.sampled_from([1, -1]), pos=poss)
def test_sched_exp_within_bounds(start, end, sign, pos):
    f = ann.sched_exp(sign*start, sign*end)
    lo, hi = sorted((sign*start, sign*end))
    tol = 1e-9*max(abs(lo), abs(hi))
    assert lo - tol <= f(pos) <= hi + tol
    assert math.isclose(f(0.), sign*start) and math.isclose(f(1.), sign*end)

@needs_ann
@given(start=vals, end=vals, p=st.floats(0, 0.999), q=st.floats(0, 0.999), name=st.sampled_from(['sched_lin', 'sched_cos']))
def test_lin_and_cos_are_monotonic(start, end, p, q, name):
    f = getattr(ann, name)(start, end)
    p, q = sorted((p, q))
    assert (f(p) <= f(q) + 1e-9) if end >= start else (f(p) >= f(q) - 1e-9)

@needs_ann
@given(pts=st.lists(vals, min_size=2, max_size=5), cuts=st.lists(st.floats(0.01, 1), min_size=4, max_size=4),
       kinds=st.lists(st.sampled_from(['sched_lin', 'sched_cos']), min_size=4, max_size=4), pos=poss)
def test_combined_schedule_continuous_and_bounded(pts, cuts, kinds, pos):
    "Phases that meet (each ends where the next starts) combine into one schedule that is continuous at every boundary"
    k = len(pts) - 1
    pcts = [c/sum(cuts[:k]) for c in cuts[:k]]
    pcts[-1] = 1 - sum(pcts[:-1])
    scheds = [getattr(ann, kinds[i])(pts[i], pts[i+1]) for i in range(k)]
    f = ann.combine_scheds(pcts, scheds)
    lo, hi = min(pts), max(pts)
    assert lo - 1e-9 <= f(pos) <= hi + 1e-9
    assert math.isclose(f(0.), pts[0], abs_tol=1e-9) and math.isclose(f(1.), pts[-1], abs_tol=1e-6)
    b = 0.
    for i in range(k-1):
        b += pcts[i]
        eps = 1e-7
        assert math.isclose(f(b), pts[i+1], abs_tol=1e-5)
        if b - eps >= 0 and b + eps <= 1:
            assert abs(f(b - eps) - f(b + eps)) < 1e-3 * (1 + hi - lo)

@needs_ann
@given(start=st.floats(1e-3, 1), high=st.floats(1, 10), end=st.floats(1e-5, 1e-3), pct=st.floats(0.05, 0.95))
def test_one_cycle_schedule(start, high, end, pct):
    f = ann.combine_scheds([pct, 1-pct], ann.cos_1cycle_anneal(start, high, end))
    assert math.isclose(f(0.), start) and math.isclose(f(pct), high, rel_tol=1e-6) and math.isclose(f(1.), end, rel_tol=1e-6)
    assert all(end*(1-1e-9) <= f(i/50) <= high*(1+1e-9) for i in range(51))

# --- the vectorised PNG decoder of the fast data path, with PIL as the oracle ------------------------------------


def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))

def encode_png(a:np.ndarray, filters:list, n_idat:int=1) -> bytes:
    "PNG bytes of uint8 image `a` (h,w) or (h,w,c) with row `r` filtered by `filters[r % len]`, IDAT in `n_idat` chunks"
    h, w = a.shape[:2]
    c = 1 if a.ndim == 2 else a.shape[2]
    rows, prev, raw = a.reshape(h, w*c).astype(np.int64), np.zeros(w*c, np.int64), b''
    for r in range(h):
        f, cur = filters[r % len(filters)], rows[r]
        left, upleft = np.concatenate([np.zeros(c, np.int64), cur[:-c]]), np.concatenate([np.zeros(c, np.int64), prev[:-c]])
        out = [cur, cur - left, cur - prev, cur - (left + prev)//2, cur - _paeth(left, prev, upleft)][f]
        raw += bytes([f]) + (out % 256).astype(np.uint8).tobytes()
        prev = cur
    def chunk(typ, data): return struct.pack('>I', len(data)) + typ + data + struct.pack('>I', zlib.crc32(typ + data))
    z = zlib.compress(raw)
    k = max(1, -(-len(z)//n_idat))
    idats = b''.join(chunk(b'IDAT', z[i:i+k]) for i in range(0, len(z), k))
    hdr = struct.pack('>IIBBBBB', w, h, 8, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', hdr) + idats + chunk(b'IEND', b'')

@given(n=st.integers(1, 4), h=st.integers(1, 6), w=st.integers(1, 7), c=st.sampled_from([1, 2, 3, 4]),
       filters=st.lists(st.lists(st.integers(0, 4), min_size=1, max_size=6), min_size=4, max_size=4),
       smooth=st.booleans(), n_idat=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_png_decoder_matches_pil(n, h, w, c, filters, smooth, n_idat, seed):
    "Images written with every PNG row filter (none, sub, up, average, Paeth), decoded in one batch, equal PIL's decoding"
    from PIL import Image
    rng = np.random.default_rng(seed)
    shape = (h, w) if c == 1 else (h, w, c)
    ims = [rng.integers(0, 256, shape).astype(np.uint8) for _ in range(n)]
    if smooth: ims = [(np.cumsum(np.ones(shape), 1)*rng.integers(1, 60) % 256).astype(np.uint8) for _ in range(n)]
    bs = [encode_png(a, filters[i], n_idat) for i, a in enumerate(ims)]
    oracle = np.stack([np.array(Image.open(io.BytesIO(b))) for b in bs])
    assert np.array_equal(oracle, np.stack(ims))       # the encoder is right
    got = decode_images(bs)
    assert got.dtype == np.uint8 and np.array_equal(got, oracle)

@settings(max_examples=8)
@given(n=st.integers(1, 9), nv=st.integers(1, 9), bs=st.integers(1, 4), mode=st.sampled_from(['L', 'RGB']),
       seed=st.integers(0, 2**16))
def test_from_dd_fast_path_equals_per_item_path(n, nv, bs, mode, seed):
    "`DataLoaders.from_dd`: the in-memory path (fast) serves the same validation batches as the per-item path"
    from datasets import ClassLabel, Dataset as HFDataset, DatasetDict, Features, Image as HFImage
    from miniai.datasets import DataLoaders
    rng = np.random.default_rng(seed)
    shape = (5, 6) if mode == 'L' else (5, 6, 3)
    def split(k):
        return HFDataset.from_dict({'image': [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(k)],
                                    'label': rng.integers(0, 3, k).tolist()},
                                   features=Features({'image': HFImage(mode=None), 'label': ClassLabel(num_classes=3)}))
    dd = DatasetDict(train=split(n), test=split(nv))
    fast, slow = DataLoaders.from_dd(dd, bs), DataLoaders.from_dd(dd, bs, fast=False)
    a, b = list(fast.valid), list(slow.valid)
    assert len(a) == len(b) == len(fast.valid) == len(slow.valid)
    for (xa, ya), (xb, yb) in zip(a, b):
        assert xa.dtype == xb.dtype == torch.float32 and ya.dtype == yb.dtype == torch.int64
        assert xa.shape == xb.shape == (len(ya), 1 if mode == 'L' else 3, 5, 6)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    key = lambda dl: torch.cat([xb.flatten(1) for xb, _ in dl]).sum(1).sort().values   # shuffled: compare as multisets
    assert torch.equal(key(fast.train), key(slow.train)) and len(key(fast.train)) == n

# --- normalization layers from scratch (nbs/11), with PyTorch's functional versions as oracles -----------------------

try: import miniai.init as init_mod
except ImportError: init_mod = None
needs_init = pytest.mark.skipif(init_mod is None, reason='miniai.init (nbs/11_initializing) is not there yet')
acts = st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5), st.integers(0, 2**16))

def rand_acts(bs, nf, h, w, seed, scale=3.):
    return torch.randn(bs, nf, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)*scale + 1.

@needs_init
@given(shape=acts.filter(lambda s: s[0]*s[2]*s[3] >= 2), mom=st.floats(0.01, 1.), steps=st.integers(1, 3))
def test_batchnorm_matches_torch(shape, mom, steps):
    "Training output, running mean and (unbiased) running variance after a few batches, then the eval output"
    bs, nf, h, w, seed = shape
    bn = init_mod.BatchNorm(nf, mom=mom).double()
    rm, rv = torch.zeros(nf, dtype=torch.float64), torch.ones(nf, dtype=torch.float64)
    for i in range(steps):
        x = rand_acts(bs, nf, h, w, seed + i)
        ref = F.batch_norm(x, rm, rv, training=True, momentum=mom, eps=1e-5)
        assert torch.allclose(bn(x), ref, atol=1e-9)
    assert torch.allclose(bn.means.flatten(), rm, atol=1e-9) and torch.allclose(bn.vars.flatten(), rv, atol=1e-9)
    bn.eval()
    x = rand_acts(bs, nf, h, w, seed + 99)
    assert torch.allclose(bn(x), F.batch_norm(x, rm, rv, training=False, eps=1e-5), atol=1e-9)

@needs_init
@given(shape=acts)
def test_layernorm_matches_torch(shape):
    bs, nf, h, w, seed = shape
    x = rand_acts(bs, nf, h, w, seed)
    assert torch.allclose(init_mod.LayerNorm(nf).double()(x), F.layer_norm(x, x.shape[1:], eps=1e-5), atol=1e-9)

@needs_init
@given(shape=acts.filter(lambda s: s[2]*s[3] >= 2))
def test_instancenorm_matches_torch(shape):
    bs, nf, h, w, seed = shape
    x = rand_acts(bs, nf, h, w, seed)
    assert torch.allclose(init_mod.InstanceNorm(nf).double()(x), F.instance_norm(x, eps=1e-5), atol=1e-9)

@needs_init
@given(shape=acts, bad=st.integers(1, 3))
def test_norm_layers_name_a_wrong_channel_count(shape, bad):
    bs, nf, h, w, seed = shape
    x = rand_acts(bs, nf + bad, h, w, seed)
    for cls in (init_mod.BatchNorm, init_mod.LayerNorm, init_mod.InstanceNorm, init_mod.RunningBatchNorm):
        with pytest.raises(ValueError, match=rf'{cls.__name__}\({nf}\) expects activations of shape \(bs, {nf}, h, w\)'):
            cls(nf)(x)

@needs_ann
@settings(max_examples=6)
@given(n_epochs=st.integers(1, 3), pct=st.floats(0.1, 0.9), lr_max=st.floats(0.01, 1.))
def test_fit_one_cycle_sets_the_scheduled_rates(n_epochs, pct, lr_max):
    "The rates the optimizer really had, batch by batch: start, peak, end and bounds of the one-cycle schedule"
    from torch import optim
    from miniai.learner import TrainLearner
    from conftest import tiny_dls, tiny_model
    rec = ann.Recorder('lr', 'mom')
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, opt_func=partial(optim.SGD, momentum=0.9), cbs=[rec])
    learn.fit_one_cycle(n_epochs, lr_max=lr_max, pct_start=pct)
    lrs, moms, n = rec.lrs, rec.hps['mom'], 4*n_epochs
    assert len(lrs) == len(moms) == n
    assert math.isclose(lrs[0], lr_max/25) and math.isclose(lrs[-1], lr_max/1e5, rel_tol=1e-6)
    assert all(lr_max/1e5*(1-1e-9) <= v <= lr_max*(1+1e-9) for v in lrs)
    peak = max(range(n), key=lrs.__getitem__)
    assert abs(peak/(n-1) - pct) <= 1/(n-1) + 1e-9                    # the peak is at the batch nearest pct_start
    assert math.isclose(moms[0], 0.95) and math.isclose(moms[-1], 0.95) and min(moms) >= 0.85 - 1e-9

# --- metrics: batch-wise accumulation equals the whole-set value ---------------------------------------------------

@settings(max_examples=10)
@given(n=st.integers(1, 70), bs=st.integers(1, 32), seed=st.integers(0, 2**16))
def test_metrics_cb_equals_whole_set_metrics(n, bs, seed):
    "MetricsCB's validation loss and accuracy, accumulated over uneven batches, equal those of the whole set at once"
    from torcheval.metrics import MulticlassAccuracy
    from miniai.datasets import DataLoaders
    from miniai.learner import MetricsCB, TrainLearner
    from conftest import tiny_model
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 4, generator=g), torch.randint(0, 2, (n,), generator=g)
    dls = DataLoaders(TensorLoader(x, y, bs=bs, shuffle=True), TensorLoader(x, y, bs=bs))
    m = MetricsCB(acc=MulticlassAccuracy())
    learn = TrainLearner(tiny_model(), dls, F.cross_entropy, lr=0.1, cbs=[m])
    learn.fit(1)
    with torch.no_grad(): out = learn.model(x)
    assert math.isclose(m.last['loss'], F.cross_entropy(out, y).item(), rel_tol=1e-5, abs_tol=1e-6)
    assert math.isclose(m.last['acc'], (out.argmax(1) == y).float().mean().item(), abs_tol=1e-6)
    assert m.history[-1]['train'] == 'eval'
