"""The GPU numbers quoted by nbs/01_matmul, nbs/02_meanshift and nbs/08_autoencoder, measured on the GPU they run on.

1. matmul: the one-program-per-output-element Triton kernel of 01_matmul vs `@` on the GPU (and `@` on the CPU), for
   the notebook's (10000, 784) @ (784, 10) product and a square 4096 product.
2. mean shift: 02_meanshift's three step functions on the GPU (1,500 points), and `step_batches` for larger point
   counts and several batch sizes, with the peak memory the CUDA allocator reports.
3. autoencoder: 08_autoencoder's three runs at full size (60,000 training images): the lesson's model with SGD and
   with AdamW for one epoch each, then the 8-channel model for 5 epochs; validation losses and seconds.

Without a CUDA GPU it says so and skips those parts (it still checks the kernels' CPU-side code paths it can).
Run from the repository root: `python bench/gpu_foundations.py` (set MINIAI_DATA to the folder of the IDX files if
they are not in a standard place). `--only matmul,meanshift,ae` picks parts."""
import argparse, math, statistics, sys, time
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parent))
import torch, torch.nn.functional as F
from torch import nn, optim
from _common import machine

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument('--only', default='matmul,meanshift,ae', help='comma-separated parts to run')
p.add_argument('--smoke', action='store_true', help='tiny sizes, only to check that the script runs')
a = p.parse_args()
parts = set(a.only.split(','))
gpu = torch.cuda.is_available()
print(machine())
if not gpu: print('no CUDA GPU: the GPU measurements are skipped')

def cuda_time(f, *args, n=20):
    "Mean seconds of `n` calls of `f(*args)` on the GPU, after a warm-up call, synchronised"
    if a.smoke: n = 1
    f(*args); torch.cuda.synchronize()
    ts = []
    for _ in range(1 if a.smoke else 3):                # three rounds, keep the median round
        t = time.perf_counter()
        for _ in range(n): f(*args)
        torch.cuda.synchronize()
        ts.append((time.perf_counter() - t)/n)
    return statistics.median(ts)

def cpu_time(f, *args, n=5):
    f(*args)
    ts = []
    for _ in range(n):
        t = time.perf_counter(); f(*args); ts.append(time.perf_counter() - t)
    return statistics.median(ts)

# ---------------------------------------------------------------- 1. matmul (the kernel is 01_matmul's)
if 'matmul' in parts:
    print('\n## matmul')
    try: import triton, triton.language as tl
    except ImportError: triton = None; print('Triton is not installed: kernel skipped')
    if triton is not None:
        @triton.jit
        def matmul_elem_kernel(a_ptr, b_ptr, c_ptr, M, N, K, BLOCK_K: tl.constexpr):
            i, j = tl.program_id(0), tl.program_id(1)
            acc = tl.zeros((BLOCK_K,), dtype=tl.float32)
            for k0 in range(0, K, BLOCK_K):
                ks = k0 + tl.arange(0, BLOCK_K)
                mask = ks < K
                acc += tl.load(a_ptr + i*K + ks, mask=mask, other=0.) * tl.load(b_ptr + ks*N + j, mask=mask, other=0.)
            tl.store(c_ptr + i*N + j, tl.sum(acc, axis=0))

        def matmul_triton(a, b):
            (M, K), (_, N) = a.shape, b.shape
            a, b = a.contiguous(), b.contiguous()
            c = torch.empty(M, N, device=a.device, dtype=torch.float32)
            matmul_elem_kernel[(M, N)](a, b, c, M, N, K, BLOCK_K=128)
            return c
    from miniai.fashion_mnist import load_fashion_mnist
    _, _, xv, _ = load_fashion_mnist()
    x = xv.view(len(xv), -1).float()/255
    torch.manual_seed(42)
    w = torch.randn(784, 10)
    t_cpu = cpu_time(torch.matmul, x, w)
    print(f'CPU @, (10000,784)@(784,10): {t_cpu*1e6:.0f}µs ({torch.get_num_threads()} threads)')
    if gpu:
        # TF32 would make `@` faster and less exact; keep full float32 so both sides do the same arithmetic
        torch.backends.cuda.matmul.allow_tf32 = False
        nsq = 16 if a.smoke else 4096
        for name, (a_, b_) in {'(10000,784)@(784,10)': (x[:4] if a.smoke else x, w),
                               f'({nsq},{nsq})@({nsq},{nsq})': (torch.randn(nsq, nsq), torch.randn(nsq, nsq))}.items():
            ag, bg = a_.cuda(), b_.cuda()
            t_mm = cuda_time(torch.matmul, ag, bg)
            line = f'GPU {name}: @ {t_mm*1e6:.1f}µs'
            if triton is not None:
                r = matmul_triton(ag, bg)
                err = ((r - ag@bg).abs().max() / (ag@bg).abs().max()).item()
                assert err < 1e-4, f'the Triton kernel disagrees with @: relative error {err}'
                t_tr = cuda_time(matmul_triton, ag, bg, n=5 if a_.shape[1] > 1000 else 20)
                line += f', triton per element {t_tr*1e6:.1f}µs ({t_tr/t_mm:.1f}x the time of @;'
                line += f' max rel. error {err:.1e})'
            if b_ is w: line += f'; CPU @ / GPU @ = {t_cpu/t_mm:.0f}x'
            print(line)

# ---------------------------------------------------------------- 2. mean shift (02_meanshift's functions)
if 'meanshift' in parts:
    print('\n## mean shift')
    from torch.distributions.multivariate_normal import MultivariateNormal
    bw = 2.5
    def gaussian(d, bw): return torch.exp(-0.5*(d/bw)**2) / (bw*math.sqrt(2*math.pi))
    def dist_b(a, b): return ((a[:, None] - b[None])**2).sum(2).sqrt()
    def step_points(X):
        new = torch.empty_like(X)
        for i, x in enumerate(X):
            weight = gaussian(((x - X)**2).sum(1).sqrt(), bw)
            new[i] = (weight[:, None] * X).sum(0) / weight.sum()
        return new
    def step_all(X):
        weight = gaussian(dist_b(X, X), bw)
        return weight @ X / weight.sum(1, keepdim=True)
    def step_batches(X, bs=256):
        new = torch.empty_like(X)
        for i in range(0, len(X), bs):
            s = slice(i, i+bs)
            weight = gaussian(dist_b(X[s], X), bw)
            new[s] = weight @ X / weight.sum(1, keepdim=True)
        return new
    torch.manual_seed(42)
    while True:
        cent = torch.rand(6, 2)*70 - 35
        if (torch.cdist(cent, cent) + torch.eye(6)*1e9).min() > 15: break
    data = torch.cat([MultivariateNormal(c, torch.diag(torch.tensor([5., 5.]))).sample((250,)) for c in cent])
    t_pts_cpu, t_all_cpu = cpu_time(step_points, data, n=2), cpu_time(step_all, data)
    print(f'CPU, 1500 points: one at a time {t_pts_cpu*1e3:.1f}ms, all at once {t_all_cpu*1e3:.1f}ms a step')
    if gpu:
        Xg = data.cuda()
        t_pts, t_all = cuda_time(step_points, Xg, n=2), cuda_time(step_all, Xg)
        t_b = {bs: cuda_time(step_batches, Xg, bs) for bs in (64, 256, 1024)}
        print(f'GPU, 1500 points: one at a time {t_pts*1e3:.1f}ms, all at once {t_all*1e3:.2f}ms ({t_pts/t_all:.0f}x), '
              + ', '.join(f'batches of {bs} {t*1e3:.2f}ms' for bs, t in t_b.items()) + ' a step')
        print(f'GPU all at once vs CPU all at once: {t_all_cpu/t_all:.0f}x')
        for npts in ((1500, 3000) if a.smoke else (1500, 30_000, 120_000)):
            X = torch.cat([data]*(npts//len(data))).cuda()
            for bs in (256, 1024, 4096, 16384):
                if bs > npts: continue
                torch.cuda.synchronize(); torch.cuda.empty_cache(); torch.cuda.reset_peak_memory_stats()
                base = torch.cuda.memory_allocated()
                t = cuda_time(step_batches, X, bs, n=3 if npts > 50_000 else 10)
                peak = torch.cuda.max_memory_allocated() - base
                print(f'  {npts:7} points, batches of {bs:5}: {t*1e3:8.2f}ms a step, '
                      f'peak extra memory {peak/1e6:8.1f}MB')

# ---------------------------------------------------------------- 3. autoencoder (08_autoencoder's runs, full size)
if 'ae' in parts and gpu:
    print('\n## autoencoder (60,000 training images, 10,000 validation, bs 128)')
    from miniai.fashion_mnist import load_fashion_mnist
    from miniai.datasets import TensorLoader
    from miniai.conv import conv
    xt, _, xv, _ = load_fashion_mnist()
    if a.smoke: xt, xv = xt[:1000], xv[:500]
    xt, xv = (xt[:, None].float()/255).cuda(), (xv[:, None].float()/255).cuda()
    def deconv(ni, nf, ks=3, act=True):
        layers = [nn.UpsamplingNearest2d(scale_factor=2), nn.Conv2d(ni, nf, ks, stride=1, padding=ks//2)]
        if act: layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    def get_ae(nf=2, nb=4):
        return nn.Sequential(nn.ZeroPad2d(2), conv(1, nf), conv(nf, nb), deconv(nb, nf), deconv(nf, 1, act=False),
                             nn.ZeroPad2d(-2), nn.Sigmoid())
    def fit(epochs, model, loss_func, opt, train_dl, valid_dl):
        losses = []
        for epoch in range(epochs):
            model.train()
            for xb, yb in train_dl:
                loss_func(model(xb), yb).backward(); opt.step(); opt.zero_grad()
            model.eval()
            tot, count = 0., 0
            with torch.no_grad():
                for xb, yb in valid_dl: tot += loss_func(model(xb), yb).item()*len(xb); count += len(xb)
            losses.append(tot/count)
        return losses
    def dls(): return TensorLoader(xt, xt, bs=128, shuffle=True), TensorLoader(xv, xv, bs=256)
    runs = (('lesson model, SGD 0.01', 2, optim.SGD, 1), ('lesson model, AdamW 0.01', 2, optim.AdamW, 1),
            ('8 channels, AdamW 0.01', 8, optim.AdamW, 5))
    for name, nf, opt_f, epochs in runs:
        for seed in (1, 2, 3):
            torch.manual_seed(seed)
            m = get_ae(nf=nf).cuda()
            torch.cuda.synchronize(); t = time.perf_counter()
            losses = fit(epochs, m, F.mse_loss, opt_f(m.parameters(), lr=0.01), *dls())
            torch.cuda.synchronize()
            print(f'{name}, {epochs} epochs, seed {seed}: valid loss ' + ' '.join(f'{l:.4f}' for l in losses)
                  + f' in {time.perf_counter()-t:.1f}s')
