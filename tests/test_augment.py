"Property tests for 14_augment's batch augmentations: per-item oracles written as plain loops, and their invariants"
import torch, torch.nn.functional as F
from hypothesis import given, settings, strategies as st

from miniai.augment import rand_crop, rand_flip, rand_erase, rand_copy, _take

shapes = st.tuples(st.integers(1, 6), st.integers(1, 3), st.integers(4, 12), st.integers(4, 12))

@settings(max_examples=30, deadline=None, derandomize=True)
@given(shapes, st.integers(0, 4), st.integers(0, 2**16))
def test_rand_crop_matches_a_loop(shape, pad, seed):
    "Each item is its padded image cut at the offset drawn for it (the same draws, replayed)"
    x = torch.randn(shape)
    bs,c,h,w = shape
    torch.manual_seed(seed); y = rand_crop(x, pad)
    torch.manual_seed(seed); oy,ox = torch.randint(0, 2*pad+1, (2,bs,1))
    xp = F.pad(x, (pad,)*4, value=x.min().item())
    for i in range(bs): assert torch.equal(y[i], xp[i, :, oy[i,0]:oy[i,0]+h, ox[i,0]:ox[i,0]+w])

@settings(max_examples=30, deadline=None, derandomize=True)
@given(shapes, st.floats(0, 1), st.integers(0, 2**16))
def test_rand_flip_matches_a_loop(shape, p, seed):
    x = torch.randn(shape)
    torch.manual_seed(seed); y = rand_flip(x, p)
    torch.manual_seed(seed); flip = torch.rand(len(x)) < p
    for i in range(len(x)): assert torch.equal(y[i], x[i].flip(-1) if flip[i] else x[i])

def test_take_is_per_item_indexing():
    x = torch.arange(2*3*5*5.).view(2, 3, 5, 5)
    rows,cols = torch.tensor([[0, 1], [3, 4]]),torch.tensor([[2, 2], [0, 4]])
    y = _take(x, rows, cols)
    for i in range(2): assert torch.equal(y[i], x[i][:, rows[i]][:, :, cols[i]])

@settings(max_examples=20, deadline=None, derandomize=True)
@given(shapes, st.floats(0.1, 0.5), st.integers(0, 4), st.integers(0, 2**16))
def test_erase_and_copy_invariants(shape, pct, max_num, seed):
    "Shapes and dtypes kept, input untouched, values within the batch's range, reproducible"
    x = torch.randn(shape); x0 = x.clone()
    for f in (rand_erase, rand_copy):
        torch.manual_seed(seed); y = f(x, pct, max_num)
        torch.manual_seed(seed); y2 = f(x, pct, max_num)
        assert y.shape == x.shape and y.dtype == x.dtype and torch.equal(y, y2) and torch.equal(x, x0)
        assert y.min() >= x.min() and y.max() <= x.max()
        if max_num == 0: assert torch.equal(y, x)

def test_erase_keeps_statistics():
    torch.manual_seed(0)
    x = torch.randn(512, 1, 28, 28)*0.35 + 0.28
    y = rand_erase(x)
    assert abs(y.mean() - x.mean()) < 0.01 and abs(y.std() - x.std()) < 0.01
