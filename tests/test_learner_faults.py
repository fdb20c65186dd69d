"""Fault injection for miniai.learner: a callback that raises at every event and step, KeyboardInterrupt mid-epoch,
NaN/inf losses, the cancel exceptions at every level, failing hooks and failing data, progress bars outside Jupyter.

After each fault we check what a user needs to go on: the error names the callback and the event, every cleanup
callback ran, no hook is left on the model, the progress bar is closed, and the same Learner trains again."""
import math, re, warnings
from collections import Counter

import fastcore.all as fc, pytest, torch, torch.nn.functional as F
from torch import nn

from miniai.learner import (Callback, CancelBatchException, CancelEpochException, CancelFitException, Learner,
                            LRFinderCB, MetricsCB, ProgressCB, SingleBatchCB, StopOnNaNCB, TrainCB, TrainLearner)
from conftest import hooks_left, params, same_params, tiny_dls, tiny_model, valid_loss

try: from miniai.activations import ActivationStats
except ImportError: ActivationStats = None

N_TRN, N_VAL = 4, 2     # batches per epoch of tiny_dls(): 64/16 training, 32/16 validation

EVENTS = [f'{w}_{l}' for l in ('fit', 'epoch', 'batch') for w in ('before', 'after', 'cleanup')] + \
         ['after_predict', 'after_loss', 'after_backward', 'after_step']
STEPS = ['predict', 'get_loss', 'backward', 'step', 'zero_grad']

class Boom(Exception): "The error our fault-injecting callbacks raise"

class HookCB(Callback):
    "Stand-in for ActivationStats when miniai.activations is not there: a hook added in before_fit, removed in cleanup_fit"
    def before_fit(self): self.h = self.learn.model[0].register_forward_hook(lambda *a: None)
    def cleanup_fit(self): self.h.remove()

def hook_cb(): return ActivationStats(fc.risinstance(nn.Linear)) if ActivationStats else HookCB()

class Log(Callback):
    "Count every event, first of all callbacks (`order` -30) or last of all (`order` 30)"
    def __init__(self, order=-30): self.order, self.n = order, Counter()
for _nm in EVENTS: setattr(Log, _nm, (lambda nm: lambda self: self.n.update([nm]))(_nm))

def raiser(event, exc=Boom, when=lambda learn: True, order=-20):
    "A callback (class `Raiser`) whose method `event` raises `exc` the first time `when(learn)` holds"
    def f(self):
        if not self.fired and when(self.learn): self.fired = True; raise exc(f'injected in {event}')
    return type('Raiser', (Callback,), {'order': order, 'fired': False, event: f})()

def learner(**kw):
    "Learner with the standard steps as a callback (so a step can be faulted too), metrics, progress bar and hooks"
    return Learner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[TrainCB(), MetricsCB(), ProgressCB(),
                                                                            hook_cb()], **kw)

def check_recovers(learn, capsys, first, last):
    "The guarantees after a failed fit: cleanups ran, no hooks, bar closed, and the learner trains again"
    for lvl in ('fit', 'epoch', 'batch'):   # every level that was entered was cleaned up, by the last callback too
        entered = first.n[f'cleanup_{lvl}']
        assert entered >= 1 or lvl != 'fit'
        assert last.n[f'cleanup_{lvl}'] == entered, f'cleanup_{lvl}: {entered} entered, last callback saw {last.n}'
    assert hooks_left(learn.model) == 0
    pcb = next(cb for cb in learn.cbs if isinstance(cb, ProgressCB))
    assert getattr(pcb, 'mbar', None) is None and getattr(pcb, 'pbar', None) is None
    out = capsys.readouterr().out
    assert out == '' or out.endswith('\n'), 'the console bar line was left open'
    assert not any(type(cb).__name__ == 'Raiser' for cb in learn.cbs), 'a fit-only callback stayed on learn.cbs'
    before = valid_loss(learn)
    learn.fit(3)
    assert valid_loss(learn) < before - 0.05
    assert hooks_left(learn.model) == 0

def _when(event):
    "Fire at the second training batch for batch-level events, at once for fit- and epoch-level ones"
    if event.endswith(('fit', 'epoch')): return lambda learn: True
    return lambda learn: learn.training and learn.iter == 1

@pytest.mark.parametrize('event', EVENTS + STEPS)
def test_callback_error_at_every_event(event, capsys):
    learn = learner()
    first, last = Log(-30), Log(30)
    with pytest.raises(Boom, match=f"raised in callback Raiser during event '{event}'"):
        learn.fit(2, cbs=[first, raiser(event, when=_when(event)), last])
    check_recovers(learn, capsys, first, last)

@pytest.mark.parametrize('event', ['before_fit', 'after_batch', 'cleanup_fit'])
def test_cleanup_runs_when_a_later_callback_fails(event, capsys):
    "The failing callback comes last (`order` 20): every other callback's cleanup ran before it, in order"
    learn = learner()
    first, last = Log(-30), Log(10)
    with pytest.raises(Boom, match=f"during event '{event}'"):
        learn.fit(2, cbs=[first, raiser(event, when=_when(event), order=20), last])
    check_recovers(learn, capsys, first, last)

def test_error_in_a_step_of_a_learner_subclass():
    "A step defined on a Learner subclass fails with its own traceback, and the Learner still trains afterwards"
    class Bad(TrainLearner):
        fail = True
        def backward(self):
            if self.fail: raise Boom('backward exploded')
            super().backward()
    learn = Bad(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[hook_cb()])
    with pytest.raises(Boom, match='backward exploded'): learn.fit(1)
    assert hooks_left(learn.model) == 0
    learn.fail = False
    before = valid_loss(learn); learn.fit(3)
    assert valid_loss(learn) < before - 0.05

# --- KeyboardInterrupt -------------------------------------------------------------------------------------------

class Snapshot(Callback):
    "Copy the parameters after every optimizer step: the weights of the last completed step"
    order = -25
    def before_fit(self): self.w, self.steps = params(self.learn.model), 0
    def after_step(self): self.w, self.steps = params(self.learn.model), self.steps + 1

@pytest.mark.parametrize('event', ['before_batch', 'predict', 'after_predict', 'after_loss', 'after_backward',
                                   'after_batch', 'after_epoch'])
def test_keyboard_interrupt_mid_epoch(event, capsys):
    learn = learner()
    first, last, snap = Log(-30), Log(30), Snapshot()
    when = lambda l: l.epoch == 1 and l.training and l.iter == 2
    if event == 'after_epoch': when = lambda l: l.epoch == 1 and l.training
    with pytest.raises(KeyboardInterrupt, match=f"raised in callback Raiser during event '{event}'"):
        learn.fit(3, cbs=[first, snap, raiser(event, KeyboardInterrupt, when), last])
    n_steps = {'before_batch': 6, 'predict': 6, 'after_predict': 6, 'after_loss': 6, 'after_backward': 6,
               'after_batch': 7, 'after_epoch': 8}[event]   # epoch 0: 4 steps; epoch 1: batches 0, 1 (and 2)
    assert snap.steps == n_steps
    assert same_params(params(learn.model), snap.w), 'the model does not hold the weights of the last completed step'
    check_recovers(learn, capsys, first, last)

def test_keyboard_interrupt_in_lr_find_restores_everything():
    learn = learner()
    learn.add_cb(raiser('after_step', KeyboardInterrupt, lambda l: l.iter == 2))   # Ctrl-C during the search
    w = params(learn.model)
    with pytest.raises(KeyboardInterrupt): learn.lr_find(plot=False, gamma=1.1)
    assert same_params(params(learn.model), w) and learn.opt is None and hooks_left(learn.model) == 0
    assert not any(isinstance(cb, LRFinderCB) for cb in learn.cbs)

# --- NaN and inf losses ------------------------------------------------------------------------------------------

def bad_loss(after:int, value=math.nan):
    "Cross-entropy that becomes `value` from call number `after` on"
    calls = []
    def f(preds, yb):
        calls.append(1)
        l = F.cross_entropy(preds, yb)
        return l * value if len(calls) > after else l
    f.calls = calls
    return f

@pytest.mark.filterwarnings('ignore:the loss was lowest at the very start')   # a tiny lr on 4 batches: expected
@pytest.mark.parametrize('value', [math.nan, math.inf])
def test_lr_find_stops_at_nan_and_restores(value):
    loss = bad_loss(5, value)
    learn = TrainLearner(tiny_model(), tiny_dls(), loss, lr=0.3, cbs=[hook_cb()])
    w = params(learn.model)
    lr = learn.lr_find(plot=False, gamma=1.2)
    cb = learn.lr_finder
    assert len(cb.losses) == 6 and not math.isfinite(cb.losses[-1])   # stopped at the first bad loss
    assert all(math.isfinite(l) for l in cb.losses[:-1])
    assert math.isfinite(lr) and 1e-7 < lr < 1e-4
    assert same_params(params(learn.model), w)
    assert learn.opt is None and hooks_left(learn.model) == 0
    assert not any(isinstance(o, LRFinderCB) for o in learn.cbs)

def test_lr_find_on_a_real_divergence_restores_weights():
    "A rate that grows 2x per batch makes the loss blow up: the search stops and the weights are the initial ones"
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3)
    w = params(learn.model)
    lr = learn.lr_find(start_lr=1e-3, gamma=2., plot=False)
    assert max(learn.lr_finder.losses[-1:]) > 3*min(learn.lr_finder.losses) or not math.isfinite(learn.lr_finder.losses[-1])
    assert same_params(params(learn.model), w)
    before = valid_loss(learn); learn.fit(3, lr=lr*10)
    assert valid_loss(learn) < before

def test_nan_loss_is_reported_by_metrics():
    "One warning per pass whose average loss is not finite: the training pass, then the validation pass (NaN weights)"
    learn = TrainLearner(tiny_model(), tiny_dls(), bad_loss(2), lr=0.3, cbs=[MetricsCB()])
    with warnings.catch_warnings(record=True) as ws:
        warnings.simplefilter('always')
        learn.fit(1)
    msgs = [str(w.message) for w in ws if issubclass(w.category, UserWarning)]
    assert len(msgs) == 2
    assert re.search(r'training loss of epoch 0 is nan: training diverged.*StopOnNaNCB', msgs[0])
    assert 'validation loss of epoch 0 is nan' in msgs[1]

@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_stop_on_nan(value):
    loss = bad_loss(6, value)
    learn = TrainLearner(tiny_model(), tiny_dls(), loss, lr=0.3, cbs=[MetricsCB(), StopOnNaNCB()])
    first, last, snap = Log(-30), Log(30), Snapshot()
    with pytest.warns(UserWarning, match=r'loss is -?(nan|inf) at epoch 1, batch 0: stopping the fit'):
        learn.fit(3, cbs=[first, snap, last])
    # epoch 0: 4 training and 2 validation batches (6 losses); the 7th is the first bad one: epoch 1, batch 0
    assert learn.nan_at == (1, 0) and len(loss.calls) == 7
    assert first.n['after_fit'] == 0 and last.n['cleanup_fit'] == 1
    assert snap.steps == N_TRN and same_params(params(learn.model), snap.w)
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())

# --- cancel exceptions ---------------------------------------------------------------------------------------------

def run_with(cb, n_epochs=2, log_order=30, **kw):
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3)
    log = Log(log_order)
    learn.fit(n_epochs, cbs=[cb, log], **kw)
    return learn, log.n

def test_cancel_batch_in_before_batch():
    "CancelBatchException skips the rest of the batch (no predict, no after_batch) but cleanup_batch runs"
    _, n = run_with(raiser('before_batch', CancelBatchException, lambda l: l.iter == 1))
    assert n['cleanup_batch'] == 2*(N_TRN + N_VAL) and n['after_batch'] == 2*(N_TRN + N_VAL) - 1
    assert n['after_predict'] == 2*(N_TRN + N_VAL) - 1 and n['after_step'] == 2*N_TRN - 1
    assert n['after_epoch'] == 4 and n['after_fit'] == 1

def test_cancel_batch_every_training_batch_means_no_step():
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3)
    w = params(learn.model)
    class NoStep(Callback):
        def after_loss(self):
            if self.learn.training: raise CancelBatchException()
    learn.fit(2, cbs=NoStep())
    assert same_params(params(learn.model), w)

def test_cancel_batch_after_backward_does_not_leak_gradients():
    "Skipping a batch after backward (e.g. because its gradients are not finite) must not add them to the next step"
    class SkipFirst(Callback):
        def after_backward(self):
            if self.learn.iter == 0: raise CancelBatchException()
        def before_batch(self):
            if self.learn.training and self.learn.iter == 1:
                self.grads = [p.grad for p in self.learn.model.parameters()]
    cb = SkipFirst()
    run_with(cb, 1, valid=False)
    assert all(g is None or not g.any() for g in cb.grads), 'gradients of the skipped batch were left in .grad'

def test_cancel_epoch_in_before_epoch_skips_training_only():
    _, n = run_with(raiser('before_epoch', CancelEpochException, lambda l: l.training))
    # epoch 0's training pass is cancelled before any batch; its validation pass and all of epoch 1 run
    assert n['cleanup_epoch'] == 4 and n['after_epoch'] == 3
    assert n['after_step'] == N_TRN and n['after_batch'] == N_TRN + 2*N_VAL
    assert n['after_fit'] == 1

def test_cancel_epoch_mid_epoch():
    _, n = run_with(raiser('after_batch', CancelEpochException, lambda l: l.training and l.iter == 1))
    # epoch 0 training stops after 2 batches (after_batch of the second ran up to the raiser... and its cleanup)
    assert n['after_step'] == 2 + N_TRN and n['cleanup_batch'] == 2 + N_TRN + 2*N_VAL
    assert n['after_epoch'] == 3 and n['cleanup_epoch'] == 4

def test_cancel_fit_mid_epoch():
    learn, n = run_with(raiser('after_batch', CancelFitException, lambda l: l.epoch == 1 and l.training and l.iter == 2),
                        n_epochs=3)
    assert n['after_step'] == N_TRN + 3 and n['cleanup_batch'] == N_TRN + N_VAL + 3
    assert n['after_epoch'] == 2 and n['cleanup_epoch'] == 3       # epoch 1's training pass was cut: no after_epoch
    assert n['after_fit'] == 0 and n['cleanup_fit'] == 1 and learn.epoch == 1

def test_cancel_fit_in_before_fit():
    learn, n = run_with(raiser('before_fit', CancelFitException))
    assert n['before_epoch'] == 0 and n['after_fit'] == 0 and n['cleanup_fit'] == 1

def test_single_batch_cb():
    "Exactly one batch; callbacks of order 0 see its after_batch (SingleBatchCB has order 1), later ones do not"
    learn, n = run_with(SingleBatchCB(), n_epochs=5, log_order=0)
    assert n['after_step'] == 1 and n['cleanup_batch'] == 1 and n['after_batch'] == 1
    _, n = run_with(SingleBatchCB(), n_epochs=5, log_order=2)
    assert n['after_step'] == 1 and n['after_batch'] == 0
    assert n['after_epoch'] == 0 and n['after_fit'] == 0 and n['cleanup_fit'] == 1

# --- progress bars outside Jupyter ---------------------------------------------------------------------------------

def test_html_progress_bars_outside_jupyter_do_not_crash():
    "The default (console=None) picks text bars here; asking for HTML bars must not crash the fit at its end"
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[MetricsCB(), ProgressCB(console=False)])
    with pytest.warns(UserWarning, match='Jupyter'): learn.fit(1)       # says it falls back to text bars
    assert len(learn.metrics.history) == 2

def test_default_progress_bars_outside_jupyter(capsys):
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[MetricsCB(), ProgressCB(plot=True)])
    learn.fit(2)
    out = capsys.readouterr().out
    assert 'Epoch 2/2' in out and out.count('train') >= 2 and out.count('eval') == 2

def test_plot_redraws_stay_within_their_budget(capsys):
    """A fake clock: batches 'take' 50 ms, a redraw 0.2 s. Over 100 short epochs (30 s of fake time) the redraws stay
    within ~5% of the time although a validation point arrives every 0.3 s; the last redraw has every point (from nbs/09)"""
    from unittest import mock
    from fastprogress.fastprogress import ConsoleMasterBar
    clock, draws = [0.], []
    def fake_graph(self, graphs, *args, **kwargs):
        clock[0] += 0.2
        draws.append((len(graphs[0][1]), len(graphs[1][0])))      # training losses drawn, validation points drawn
    class Tick(Callback):
        def after_batch(self): clock[0] += 0.05
    with mock.patch('time.perf_counter', lambda: clock[0]), mock.patch.object(ConsoleMasterBar, 'update_graph', fake_graph):
        learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.1,
                             cbs=[MetricsCB(), Tick(), ProgressCB(plot=True, console=True)])
        learn.fit(100)
    assert 3 <= len(draws) and len(draws)*0.2 <= 0.06*clock[0], (len(draws), clock[0])
    assert draws[-1] == (100*N_TRN, 100)

# --- more faults: hooks that fail, parameters without gradients, the LR finder with every callback ------------------

@pytest.mark.skipif(ActivationStats is None, reason='miniai.activations is not there yet')
def test_hook_function_that_raises():
    "A hook that fails inside the model's forward: the error propagates, every hook is removed, the learner trains again"
    from miniai.activations import HooksCallback
    calls = []
    def bad(hook, mod, inp, outp):
        calls.append(1)
        if len(calls) == 3: raise Boom('hook exploded')
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[HooksCallback(bad, fc.risinstance(nn.Linear))])
    with pytest.raises(Boom, match='hook exploded'): learn.fit(1)
    assert hooks_left(learn.model) == 0
    before = valid_loss(learn); learn.fit(3)
    assert valid_loss(learn) < before - 0.05 and hooks_left(learn.model) == 0

def test_momentum_learner_with_parameters_that_get_no_gradient():
    "A frozen layer and an unused layer have `grad` None: MomentumLearner's zero_grad skips them and trains the rest"
    from miniai.learner import MomentumLearner
    class WithSpare(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.unused = tiny_model(), nn.Linear(3, 3)   # `unused` is never called: its grad stays None
        def forward(self, x): return self.body(x)
    model = WithSpare()
    for p in model.body[0].parameters(): p.requires_grad_(False)
    frozen, unused = params(model.body[0]), params(model.unused)
    learn = MomentumLearner(model, tiny_dls(), F.cross_entropy, lr=0.1, mom=0.85)
    before = valid_loss(learn); learn.fit(3)
    assert valid_loss(learn) < before - 0.05
    assert same_params(params(model.body[0]), frozen) and same_params(params(model.unused), unused)
    assert all(p.grad is None for p in model.unused.parameters())

@pytest.mark.filterwarnings('ignore:the loss was lowest at the very start')
def test_lr_find_with_metrics_progress_and_hooks(capsys):
    "The LR finder inside a fully equipped learner: no table row for the cancelled epochs, bars closed, hooks gone"
    learn = learner()
    w = params(learn.model)
    lr = learn.lr_find(plot=False)
    assert math.isfinite(lr) and same_params(params(learn.model), w) and hooks_left(learn.model) == 0
    pcb = next(cb for cb in learn.cbs if isinstance(cb, ProgressCB))
    assert getattr(pcb, 'mbar', None) is None
    out = capsys.readouterr().out
    assert out.endswith('\n')
    before = valid_loss(learn); learn.fit(2, lr=lr*10)
    assert valid_loss(learn) < before

@pytest.mark.parametrize('exc', [CancelFitException, CancelEpochException, CancelBatchException])
def test_cancel_with_hooks_and_bars(exc, capsys):
    "The course's loop skipped cleanup on a cancel, so hooks leaked: here every cancel leaves no hook and closed bars"
    learn = learner()
    first, last = Log(-30), Log(30)
    learn.fit(2, cbs=[first, raiser('after_batch', exc, lambda l: l.training and l.iter == 1), last])
    check_recovers(learn, capsys, first, last)

# --- the data fails mid-epoch ----------------------------------------------------------------------------------

class FlakyTfm:
    "A batch transform that raises on its `at`-th call, once"
    def __init__(self, at): self.at, self.n = at, 0
    def __call__(self, b):
        self.n += 1
        if self.n == self.at: raise OSError('disk read failed (simulated)')
        return b

def test_data_error_mid_epoch(capsys):
    "A batch that cannot be loaded (epoch 0, third training batch): the guarantees hold and the next fit trains"
    learn = learner()
    learn.dls.train.tfm = FlakyTfm(3)
    first, last = Log(-30), Log(30)
    with pytest.raises(OSError, match='disk read failed'): learn.fit(2, cbs=[first, last])
    assert first.n['after_step'] == 2 and first.n['cleanup_epoch'] == 1
    check_recovers(learn, capsys, first, last)

class FlakyItems(torch.utils.data.Dataset):
    "Items of tiny_data; item 37 cannot be read"
    def __init__(self, x, y): self.x, self.y = x, y
    def __len__(self): return len(self.x)
    def __getitem__(self, i):
        if i == 37: raise OSError(f'cannot read item {i} (simulated)')
        return self.x[i], self.y[i]

def test_worker_error_mid_epoch(capsys):
    "The same with DataLoader worker processes: the worker's error reaches the fit, and a new fit starts new workers"
    from conftest import tiny_data
    from miniai.datasets import DataLoaders
    from miniai.training import Dataset, get_dls
    xt, yt, xv, yv = tiny_data()
    trn, val = get_dls(FlakyItems(xt, yt), Dataset(xv, yv), 16, num_workers=2)
    learn = learner()
    learn.dls = DataLoaders(trn, val)
    first, last = Log(-30), Log(30)
    with pytest.raises(OSError, match=r'cannot read item 37'): learn.fit(1, cbs=[first, last])
    learn.dls = DataLoaders(get_dls(Dataset(xt, yt), Dataset(xv, yv), 16, num_workers=2)[0], val)
    check_recovers(learn, capsys, first, last)

@pytest.mark.skipif(ActivationStats is None, reason='miniai.activations is not there yet')
def test_activation_stats_count_exactly_the_batches_run():
    "Stats are recorded for the training batches that ran their forward pass, not for cancelled or validation ones"
    st = ActivationStats(fc.risinstance(nn.Linear))
    learn = TrainLearner(tiny_model(), tiny_dls(), F.cross_entropy, lr=0.3, cbs=[st])
    learn.fit(2, cbs=raiser('before_batch', CancelBatchException, lambda l: l.training and l.epoch == 1 and l.iter == 2))
    assert [len(h.stats[0]) for h in st] == [2*N_TRN - 1]*2
    with pytest.raises(KeyboardInterrupt):
        learn.fit(2, cbs=raiser('after_loss', KeyboardInterrupt, lambda l: l.training and l.iter == 1))
    assert [len(h.stats[0]) for h in st] == [2]*2 and hooks_left(learn.model) == 0
