"""Train `14_augment`'s ResNet (`miniai.augment.get_resnet`) on Fashion-MNIST with the notebook's recipe, on a GPU.

The full-size results of nbs/14_augment.ipynb come from this recipe: AdamW, one cycle (`fit_one_cycle`), kaiming init,
per-item augmentation on the GPU (`rand_crop`, `rand_flip`, optionally `rand_erase`) through `BatchTransformCB`, then
test-time augmentation with flips. Options: an exponential moving average of the weights (`--ema`, evaluated beside
the trained weights), more ResBlocks per stage (`--blocks`), the crop's padding (`--pad`; the notebook uses 1), mixup
or cutmix (`--mix`), the last batchnorm of each ResBlock initialised to zero (`--zero-bn`), the training step as one
CUDA graph (`--graph`: 15_accel's `GraphStepCB`). Each run prints one JSON
line: the validation accuracy of each epoch, the final accuracy with and without TTA, and the seconds the fit took;
`--save` keeps the validation predictions (plain and flipped) so that runs can be ensembled with `--ensemble a.pt b.pt`.

    python bench/fashion_resnet.py --epochs 20 --nfs 48,96,192,384,768 --ls 0.2 --pad 1   # 14_augment's models A, B
    python bench/fashion_resnet.py --epochs 20 --nfs 16,32,64,128,256 --aug crop,flip
    python bench/fashion_resnet.py --ensemble run1.pt run2.pt
"""
import argparse, json, math, os, random, sys, time
from functools import partial

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import torch, torch.nn.functional as F
from torch import nn, optim
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torcheval.metrics import MulticlassAccuracy

from miniai.fashion_mnist import load_fashion_mnist
from miniai.datasets import DataLoaders, TensorLoader
from miniai.conv import normalize_sets
from miniai.activations import set_seed
from miniai.init import init_weights, BatchTransformCB
from miniai.learner import Learner, TrainLearner, MetricsCB, Callback
from miniai.accel import GraphStepCB
from miniai.resnet import ResBlock
from miniai.annealing import fit_one_cycle  # noqa: F401  (patches Learner.fit_one_cycle)
from miniai.augment import get_resnet, tfm_batch, rand_crop, rand_flip, rand_erase, capture_preds  # noqa: F401

def acc(p, t): return (p.argmax(1) == t).float().mean().item()

def deeper(model, blocks):
    "Add `blocks-1` stride-1 ResBlocks after each stride-2 ResBlock of `get_resnet`'s model"
    layers = []
    for m in model:
        layers.append(m)
        if isinstance(m, ResBlock) and isinstance(m.pool, nn.AvgPool2d):      # a stride-2 block
            nf = m.convs[1][0].out_channels
            layers += [ResBlock(nf, nf) for _ in range(blocks-1)]
    return nn.Sequential(*layers)

class EMACB(Callback):
    "Keep an exponential moving average of the weights (and batchnorm buffers) after each optimizer step"
    def __init__(self, decay): self.decay, self.ema = decay, None
    def before_fit(self):
        if self.ema is None: self.ema = AveragedModel(self.learn.model, multi_avg_fn=get_ema_multi_avg_fn(self.decay),
                                                      use_buffers=True)
    def after_step(self): self.ema.update_parameters(self.learn.model)

class MixCB(Callback):
    "Mixup (`kind='mixup'`) or cutmix on training batches, after the augmentations; `loss` mixes the targets' losses alike"
    order = BatchTransformCB.order + 1
    def __init__(self, kind, alpha, base_loss): self.kind,self.alpha,self.base,self.lam = kind,alpha,base_loss,None
    def before_batch(self):
        self.lam = None
        if not self.training: return
        x, y = self.learn.batch
        lam, self.perm = random.betavariate(self.alpha, self.alpha), torch.randperm(len(x), device=x.device)
        if self.kind == 'mixup': x = torch.lerp(x[self.perm], x, lam)
        else:                                              # a box of the partner image, of area (1-lam) of the image
            h, w = x.shape[-2:]; ch, cw = int(h*math.sqrt(1-lam)), int(w*math.sqrt(1-lam))
            cy, cx = random.randrange(h), random.randrange(w)
            y0, y1, x0, x1 = max(cy-ch//2, 0), min(cy+ch//2, h), max(cx-cw//2, 0), min(cx+cw//2, w)
            x = x.clone(); x[..., y0:y1, x0:x1] = x[self.perm][..., y0:y1, x0:x1]
            lam = 1 - (y1-y0)*(x1-x0)/(h*w)
        self.learn.batch, self.lam = (x, y), lam
    def loss(self, preds, y):
        if self.lam is None: return self.base(preds, y)
        return self.lam*self.base(preds, y) + (1-self.lam)*self.base(preds, y[self.perm])

class EpochTimesCB(Callback):
    "Seconds since the fit began at the end of each epoch (training and validation), the GPU synchronised"
    def before_fit(self): self.t0, self.ts = time.perf_counter(), []
    def after_epoch(self):
        if self.training: return
        if torch.cuda.is_available(): torch.cuda.synchronize()
        self.ts.append(round(time.perf_counter() - self.t0, 2))

def run(a):
    dev = torch.device(a.device)
    if dev.type == 'cuda': torch.backends.cudnn.benchmark = True
    xtr, ytr, xva, yva = load_fashion_mnist()
    xtr, xva = normalize_sets(xtr[:, None].float()/255, xva[:, None].float()/255)
    n = a.n_train or len(xtr)
    dls = DataLoaders(TensorLoader(xtr[:n], ytr[:n], bs=a.bs, shuffle=True, device=dev),
                      TensorLoader(xva[:a.n_valid], yva[:a.n_valid], bs=1024, device=dev))
    tfms = [t for t in a.aug.split(',') if t]
    fs = {'crop': partial(rand_crop, pad=a.pad), 'flip': rand_flip, 'erase': rand_erase}
    def aug(x):
        for t in tfms: x = fs[t](x)
        return x
    set_seed(a.seed)
    model = get_resnet(tuple(int(o) for o in a.nfs.split(',')), drop=a.drop)
    if a.blocks > 1: model = deeper(model, a.blocks)
    model = model.apply(partial(init_weights, leaky=0.1)).to(dev)
    if a.zero_bn:                     # each ResBlock starts as its identity path: the last batchnorm's scale at 0
        for m in model.modules():
            if isinstance(m, ResBlock): nn.init.zeros_(m.convs[-1][1].weight)
    loss = partial(F.cross_entropy, label_smoothing=a.ls) if a.ls else F.cross_entropy
    metrics = MetricsCB(accuracy=MulticlassAccuracy())
    metrics._log = lambda d: None
    times = EpochTimesCB()
    cbs = [metrics, times] + ([BatchTransformCB(partial(tfm_batch, tfm_x=aug), on_val=False)] if tfms else [])
    if a.mix:
        kind, alpha = a.mix.split(':'); random.seed(a.seed)
        mix = MixCB(kind, float(alpha), loss); cbs.append(mix); loss = mix.loss
    ema = EMACB(a.ema) if a.ema else None
    if ema: cbs.append(ema)
    opt_func = (partial(optim.SGD, momentum=0.9, nesterov=True, weight_decay=a.wd) if a.opt == 'sgd' else
                partial(optim.AdamW, weight_decay=a.wd))
    if a.graph: cbs.append(GraphStepCB())           # the training steps: forward, loss, backward in one CUDA graph
    learn = (Learner if a.graph else TrainLearner)(model, dls, loss, lr=a.lr, opt_func=opt_func, cbs=cbs)
    if dev.type == 'cuda': torch.cuda.synchronize()
    t0 = time.perf_counter()
    learn.fit_one_cycle(a.epochs)
    if dev.type == 'cuda': torch.cuda.synchronize()
    secs = time.perf_counter() - t0
    epoch_ts = times.ts                 # `capture_preds` below runs fits that start a new list
    valid = [float(d['accuracy']) for d in metrics.history if d['train'] == 'eval']   # before capture_preds' fits
    p, t = learn.capture_preds()
    hflip = BatchTransformCB(partial(tfm_batch, tfm_x=partial(torch.flip, dims=(-1,))), on_train=False)
    p2, _ = learn.capture_preds(cbs=[hflip])
    def views(extra_cbs=()):
        "Softmax averaged over 10 views: the image, its flip, and each shifted by one pixel up/down/left/right"
        ps = []
        for flip in (False, True):
            for dy, dx in ((1, 1), (0, 1), (2, 1), (1, 0), (1, 2)):
                def tf(x, dy=dy, dx=dx, flip=flip):
                    x = F.pad(x, (1, 1, 1, 1), mode='replicate')[..., dy:dy+28, dx:dx+28]
                    return x.flip(-1) if flip else x
                ps.append(learn.capture_preds(cbs=[BatchTransformCB(partial(tfm_batch, tfm_x=tf), on_train=False)])[0].softmax(1))
        return torch.stack(ps).mean(0)
    extra = dict(acc_tta10=acc(views(), t))
    if ema:
        learn.remove_cb(ema); trained, learn.model = learn.model, ema.ema.module
        pe, _ = learn.capture_preds(); pe2, _ = learn.capture_preds(cbs=[hflip])
        extra.update(acc_ema=acc(pe, t), acc_ema_tta=acc((pe+pe2)/2, t), acc_ema_tta10=acc(views(), t))
        learn.model = trained
    res = dict(vars(a), valid=valid, **extra,
               acc=acc(p, t), acc_tta=acc((p+p2)/2, t), fit_s=round(secs, 1), epoch_end_s=epoch_ts,
               device=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu')
    print(json.dumps(res), flush=True)
    if a.save: torch.save(dict(p=p, p2=p2, t=t, res=res), a.save)

def ensemble(fns):
    ds = [torch.load(f) for f in fns]
    t = ds[0]['t']
    p = torch.stack([d['p'] for d in ds]).mean(0)
    ptta = torch.stack([(d['p']+d['p2'])/2 for d in ds]).mean(0)
    print(json.dumps(dict(ensemble=fns, acc=acc(p, t), acc_tta=acc(ptta, t),
                          members=[(d['res']['acc'], d['res']['acc_tta']) for d in ds])), flush=True)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--epochs', type=int, default=20)
    ap.add_argument('--bs', type=int, default=256)
    ap.add_argument('--lr', type=float, default=1e-2)
    ap.add_argument('--wd', type=float, default=0.01, help="AdamW's weight decay")
    ap.add_argument('--nfs', default='16,32,64,128,256', help='channels of the first block, then each stride-2 block')
    ap.add_argument('--drop', type=float, default=0.)
    ap.add_argument('--ls', type=float, default=0., help='label smoothing')
    ap.add_argument('--aug', default='crop,flip', help='comma-separated: crop, flip, erase')
    ap.add_argument('--pad', type=int, default=4, help="rand_crop's padding: items shift by up to this many pixels")
    ap.add_argument('--mix', default='', help="'mixup:ALPHA' or 'cutmix:ALPHA' (lam ~ Beta(ALPHA, ALPHA)); '' none")
    ap.add_argument('--zero-bn', action='store_true', help="zero the last batchnorm's weight in each ResBlock")
    ap.add_argument('--graph', action='store_true', help="train with 15_accel's GraphStepCB (compiled, CUDA graphs)")
    ap.add_argument('--seed', type=int, default=42)
    ap.add_argument('--opt', default='adamw', choices=['adamw', 'sgd'], help='AdamW, or SGD with Nesterov momentum 0.9')
    ap.add_argument('--ema', type=float, default=0., help='decay of an EMA of the weights, e.g. 0.999 (0: none)')
    ap.add_argument('--blocks', type=int, default=1, help='ResBlocks per stride-2 stage (the extra ones at stride 1)')
    ap.add_argument('--n-train', type=int, default=0, help='0: all 60,000')
    ap.add_argument('--n-valid', type=int, default=10_000)
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--save', default='', help='file for the validation predictions (for --ensemble)')
    ap.add_argument('--ensemble', nargs='+', help='average the saved predictions of these runs')
    a = ap.parse_args()
    if a.ensemble: ensemble(a.ensemble)
    else: run(a)
