"""Callbacks written the way the course repository's own `miniai` writes them (fastai/course22p2: methods that take the
learner, `def after_batch(self, learn)`; `DeviceCB(def_device)`; a progress callback that takes over `learn.metrics._log`;
`lr_find(gamma, max_mult, start_lr, max_epochs)`; the `with_cbs` decorator), run unchanged on our Learner, alone and
mixed with callbacks in the lessons' style (`def after_batch(self)` reading `self.learn`)."""
import math
from copy import copy

import pytest, torch, torch.nn.functional as F
from torch import nn
from torcheval.metrics import Mean, MulticlassAccuracy

from miniai.conv import def_device, to_device
from miniai.learner import (Callback, CancelEpochException, CancelFitException, Learner, MetricsCB, MomentumLearner,
                            TrainLearner, run_cbs, to_cpu, with_cbs)
from conftest import params, same_params, tiny_dls, tiny_model, valid_loss

# --- callbacks in the course repository's style (our own code, written to its conventions) ---------------------------

class CTrainCB(Callback):
    "The five steps, each taking the learner"
    def predict(self, learn): learn.preds = learn.model(learn.batch[0])
    def get_loss(self, learn): learn.loss = learn.loss_func(learn.preds, learn.batch[1])
    def backward(self, learn): learn.loss.backward()
    def step(self, learn): learn.opt.step()
    def zero_grad(self, learn): learn.opt.zero_grad()

class CDeviceCB(Callback):
    "Model to `device` before the fit, each batch to it before it runs; `device` defaults to the value `def_device`"
    def __init__(self, device=def_device): self.device = device
    def before_fit(self, learn): learn.model.to(self.device)
    def before_batch(self, learn): learn.batch = to_device(learn.batch, device=self.device)

class CMetricsCB(Callback):
    "Metrics updated on the CPU every batch, a `Mean` for the loss, a `_log` that another callback may replace"
    def __init__(self, *ms, **metrics):
        for m in ms: metrics[type(m).__name__] = m
        self.metrics = metrics
        self.all_metrics = {**copy(metrics), 'loss': Mean()}
        self.logged = []
    def _log(self, d): self.logged.append(d)
    def before_fit(self, learn): learn.metrics = self
    def before_epoch(self, learn):
        for m in self.all_metrics.values(): m.reset()
    def after_batch(self, learn):
        xb, yb, *_ = to_cpu(learn.batch)
        for m in self.metrics.values(): m.update(to_cpu(learn.preds), yb)
        self.all_metrics['loss'].update(to_cpu(learn.loss), weight=len(xb))
    def after_epoch(self, learn):
        d = {k: f'{m.compute():.3f}' for k, m in self.all_metrics.items()}
        self._log({**d, 'epoch': learn.epoch, 'train': 'train' if learn.model.training else 'eval'})

class CProgressCB(Callback):
    "Takes over the metrics callback's `_log`, as the course's ProgressCB does, and records what it would show"
    order = 1
    def before_fit(self, learn):
        self.rows = []
        if hasattr(learn, 'metrics'): learn.metrics._log = self.rows.append
    def after_batch(self, learn): self.comment = f'{learn.loss:.3f}'

class CountEvents(Callback):
    "Lessons' style: no learner argument, reads `self.learn`"
    def before_fit(self): self.n, self.learns = 0, set()
    def after_batch(self): self.n += 1; self.learns.add(id(self.learn))

def test_course_style_callbacks_train_on_our_learner():
    torch.manual_seed(0)
    mets, prog, cnt = CMetricsCB(acc=MulticlassAccuracy()), CProgressCB(), CountEvents()
    learn = Learner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[CTrainCB(), CDeviceCB(), mets, prog, cnt])
    before = valid_loss(learn)
    learn.fit(3)
    assert valid_loss(learn) < before - 0.05
    assert [r['train'] for r in prog.rows] == ['train', 'eval']*3 and mets.logged == []   # the progress cb took the log
    assert float(prog.rows[-1]['acc']) > 0.7 and cnt.n == 3*(4+2) and cnt.learns == {id(learn)}
    assert next(learn.model.parameters()).device == def_device

def test_course_metrics_and_ours_agree():
    "The course's per-batch CPU metrics and our MetricsCB (on the device, no copies) give the same numbers"
    theirs, ours = CMetricsCB(acc=MulticlassAccuracy()), MetricsCB(acc=MulticlassAccuracy())
    TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[theirs, ours, CProgressCB()]).fit(2)
    assert [{k: d[k] for k in ('acc', 'loss')} for d in theirs.logged] == \
           [{k: d[k] for k in ('acc', 'loss')} for d in ours.history]
    assert list(ours.all_metrics) == ['acc', 'loss']

def test_course_style_callback_gets_the_same_learner_in_run_cbs():
    class CourseCB(Callback):
        def before_fit(self, learn): self.got = learn
    class LessonCB(Callback):
        def before_fit(self): self.got = self.learn
    a, b = CourseCB(), LessonCB()
    run_cbs([a, b], 'before_fit', learn='L')
    assert a.got == 'L' and b.got == 'L'

def test_course_style_cancel_and_cleanup():
    "The course's LR finder pattern: cancel the validation epoch from after_batch, end the fit, clean up"
    class CLRFinder(Callback):
        def __init__(self, gamma=1.3, max_mult=3): self.gamma, self.max_mult = gamma, max_mult
        def before_fit(self, learn): self.lrs, self.losses, self.min, self.cleaned = [], [], math.inf, False
        def after_batch(self, learn):
            if not learn.training: raise CancelEpochException()
            self.lrs.append(learn.opt.param_groups[0]['lr']); loss = to_cpu(learn.loss).item()
            self.losses.append(loss); self.min = min(self.min, loss)
            if loss > self.max_mult*self.min: raise CancelFitException()
            for g in learn.opt.param_groups: g['lr'] *= self.gamma
        def cleanup_fit(self, learn): self.cleaned = True
    cb = CLRFinder(gamma=2.)
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=1e-3)
    learn.fit(20, cbs=cb)
    assert cb.cleaned and cb.losses[-1] > 3*cb.min and cb not in learn.cbs

@pytest.mark.filterwarnings('ignore:the loss was lowest at the very start')
def test_lr_find_takes_the_course_arguments_in_order():
    learn = MomentumLearner(tiny_model(), tiny_dls(), F.cross_entropy, 0.1, None, torch.optim.SGD, 0.85)  # positional
    w = params(learn.model)
    lr = learn.lr_find(1.5, 3, 1e-4, 2, plot=False)         # gamma, max_mult, start_lr, max_epochs
    assert learn.lr_finder.lrs[0] == pytest.approx(1e-4) and learn.lr_finder.lrs[1] == pytest.approx(1.5e-4)
    assert same_params(params(learn.model), w) and math.isfinite(lr)

def test_with_cbs_on_a_learner_of_your_own():
    "The course's decorator, used the course's way: a small learner of your own whose `callback` is `run_cbs`"
    class MiniLearner:
        def __init__(self, cbs): self.cbs = cbs
        def callback(self, nm): run_cbs(self.cbs, nm, self)
        @with_cbs('validate')
        def validate(self): self.log.append('body')
    class CourseCB(Callback):
        def before_validate(self, learn): learn.log = ['before']
        def after_validate(self, learn): learn.log.append('after')
    class LessonCB(Callback):
        order = 1
        def cleanup_validate(self): self.learn.log.append('cleanup')
    mini = MiniLearner([LessonCB(), CourseCB()])
    mini.validate()
    assert mini.log == ['before', 'body', 'after', 'cleanup']
