"""Train 14_augment's ResNet on Fashion-MNIST with miniai's `Learner` and `AccelerateCB`, in one process (a CPU or one
GPU) or in one process per GPU started by Hugging Face Accelerate or torchrun:

    python examples/train_fashion.py --epochs 5                                  # one process: CPU or one GPU
    accelerate launch --num_processes 2 examples/train_fashion.py --epochs 5    # two GPUs
    torchrun --nproc_per_node 2 examples/train_fashion.py --epochs 5            # the same with torchrun
    torchrun --nproc_per_node 2 examples/train_fashion.py --limit 2048 --epochs 1   # two CPU processes (gloo), a quick try
    NCCL_NVLS_ENABLE=0 torchrun --nproc_per_node 2 examples/train_fashion.py --sync-bn   # BatchNorm over both GPUs

The model is `miniai.augment.get_resnet` with kaiming init (`init_weights(leaky=0.1)`), as 14_augment trains it. The
default `--nfs 16,32,64,128,256,512` gives the channels of the ResNet of 13_resnet's shape that BENCHMARKS.md's first
1- vs 2-GPU runs measured (a 5×5 first block, then five stride-2 blocks down to 1×1); 14_augment's own size is
`--nfs 16,32,64,128,256` (four stride-2 blocks to 2×2, then global average pooling: about 4× the FLOPs per image).
Compared with the model of those first runs (defined in this script then), `get_resnet` uses 13_resnet's `ResBlock`
(`GeneralRelu` activations, no batchnorm on the 1×1 identity convs) and global average pooling.

`--bs` is the batch size of each process (the global batch is `--bs` times the number of processes). Only the main
process prints, writes `--save` and `--json`. The images per second of the training epochs after the first are timed."""
import argparse, json, statistics, sys, time
from functools import partial
from pathlib import Path
import torch, torch.nn.functional as F
from torch import optim
from torcheval.metrics import MulticlassAccuracy
try: import miniai
except ImportError: sys.path.insert(0, str(Path(__file__).parent.parent))   # run from a checkout without installing
from miniai.fashion_mnist import load_fashion_mnist
from miniai.datasets import DataLoaders, TensorLoader, float_imgs
from miniai.learner import Learner, Callback, MetricsCB, ProgressCB
from miniai.annealing import fit_one_cycle   # noqa: F401 (adds Learner.fit_one_cycle)
from miniai.init import init_weights
from miniai.augment import get_resnet
from miniai.accel import AccelerateCB

class ThroughputCB(Callback):
    "Images per second of each training epoch (all processes together: the targets are gathered by AccelerateCB)"
    def before_fit(self): self.ips = []
    def before_epoch(self):
        if not self.training: return
        if torch.cuda.is_available(): torch.cuda.synchronize()
        self.n,self.t = 0,time.perf_counter()
    def after_batch(self):
        if self.training: self.n += len(self.learn.batch[1])
    def after_epoch(self):
        if not self.training: return
        if torch.cuda.is_available(): torch.cuda.synchronize()
        self.ips.append(self.n/(time.perf_counter()-self.t))

def norm_imgs(b):
    x,y = float_imgs(b)
    return (x-0.286)/0.353, y          # Fashion-MNIST's mean and std

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--bs', type=int, default=1024, help='batch size of each process')
    p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--lr', type=float, default=1e-2, help='peak learning rate of the one cycle (AdamW)')
    p.add_argument('--mixed-precision', default='no', choices=['no', 'bf16', 'fp16', 'auto'])
    p.add_argument('--sync-bn', action='store_true', help='BatchNorm statistics over all processes (GPUs only: '
                   'AccelerateCB turns the BatchNorm layers into nn.SyncBatchNorm)')
    p.add_argument('--nfs', default='16,32,64,128,256,512', help="get_resnet's channels (14_augment's: 16,32,64,128,256)")
    p.add_argument('--limit', type=int, default=None, help='use only the first n training images (and n/6 validation)')
    p.add_argument('--seed', type=int, default=42, help='initial weights and shuffling')
    p.add_argument('--data', default=None, help='folder with the Fashion-MNIST IDX files (default: the usual search)')
    p.add_argument('--save', default=None, help='write the trained model here (main process only)')
    p.add_argument('--json', default=None, help='write the results here (main process only)')
    a = p.parse_args()
    torch.manual_seed(a.seed)                  # the same initial weights everywhere (DDP also copies rank 0's)
    acb = AccelerateCB(mixed_precision=a.mixed_precision, sync_bn=a.sync_bn, seed=a.seed)
    acc = acb.acc
    xt,yt,xv,yv = load_fashion_mnist(a.data)
    if a.limit: xt,yt,xv,yv = xt[:a.limit],yt[:a.limit],xv[:a.limit//6],yv[:a.limit//6]
    dls = DataLoaders(TensorLoader(xt, yt, bs=a.bs, shuffle=True, tfm=norm_imgs),
                      TensorLoader(xv, yv, bs=a.bs*2, tfm=norm_imgs))
    nfs = tuple(int(o) for o in a.nfs.split(','))
    model,name = get_resnet(nfs).apply(partial(init_weights, leaky=0.1)),f"get_resnet(nfs={a.nfs}) (14_augment)"
    acc.print(f'{acc.num_processes} process(es) on {acc.device}, {name}, bs {a.bs} each ({a.bs*acc.num_processes} '
              f'in all), {a.epochs} epochs, mixed precision {a.mixed_precision}')
    tcb,mcb = ThroughputCB(),MetricsCB(accuracy=MulticlassAccuracy())
    learn = Learner(model, dls, F.cross_entropy, lr=a.lr, opt_func=partial(optim.AdamW, eps=1e-5),
                    cbs=[acb, mcb, tcb, ProgressCB()])
    t = time.perf_counter()
    learn.fit_one_cycle(a.epochs, lr_max=a.lr)
    total = time.perf_counter()-t
    if a.save: learn.save(a.save)              # every process calls it; only the main one writes
    ips = tcb.ips[1:] or tcb.ips               # the first epoch includes cuDNN's autotuning and warm-up
    res = dict(n_procs=acc.num_processes, device=str(acc.device), gpu=torch.cuda.get_device_name() if
               torch.cuda.is_available() else None, model=name, bs_per_proc=a.bs, epochs=a.epochs,
               mixed_precision=a.mixed_precision, sync_bn=a.sync_bn, fit_s=round(total, 2),
               images_per_s=round(statistics.median(ips)), images_per_s_epochs=[round(o) for o in tcb.ips],
               final=mcb.history[-1], history=mcb.history, torch=torch.__version__)
    acc.print(json.dumps(res))
    if a.json and acc.is_main_process: Path(a.json).write_text(json.dumps(res, indent=1))
    if torch.distributed.is_initialized(): torch.distributed.destroy_process_group()

if __name__ == '__main__': main()
