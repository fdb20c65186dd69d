"""Bad input to the Learner and the data pipeline: each mistake must fail with a message that names the problem and
the fix (checked with `pytest.raises(..., match=...)`, which also searches the exception's notes)."""
import pytest, torch, torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from miniai.datasets import DataLoaders, TensorLoader, collate_dict
from miniai.learner import Callback, Learner, MetricsCB, TrainLearner
from miniai.training import Dataset, collate, fit, get_dls
from conftest import tiny_data, tiny_dls, tiny_model

def learner(model=None, dls=None, loss_func=F.cross_entropy, **kw):
    return TrainLearner(model or tiny_model(), dls or tiny_dls(), loss_func, lr=0.1, **kw)

def dls_of(x, y, bs=16): return DataLoaders(TensorLoader(x, y, bs=bs), TensorLoader(x, y, bs=bs))

# --- the batch and the model do not fit together -------------------------------------------------------------------

def test_batch_of_the_wrong_shape():
    xt, yt, *_ = tiny_data()
    with pytest.raises(RuntimeError, match=r'model failed on the first batch, \(\(16, 1, 2, 2\) float32.*nn.Flatten'):
        learner(dls=dls_of(xt.view(-1, 1, 2, 2), yt)).fit(1)

def test_wrong_number_of_features():
    with pytest.raises(RuntimeError, match=r'first batch, \(\(16, 4\) float32, \(16,\) int64\).*reshape the batch'):
        learner(nn.Linear(5, 2)).fit(1)

def test_float_labels_for_cross_entropy():
    xt, yt, *_ = tiny_data()
    with pytest.raises(TypeError, match=r'labels are torch.float32 but cross-entropy needs class indices.*yb.long\(\)'):
        learner(dls=dls_of(xt, yt.float())).fit(1)
    with pytest.raises(TypeError, match='cross-entropy needs class indices'):   # the module form too
        learner(dls=dls_of(xt, yt.float()), loss_func=nn.CrossEntropyLoss()).fit(1)

def test_model_and_batch_on_different_devices():
    "The 'meta' device stands in for a GPU: the model is there, the batches are on the CPU"
    with pytest.raises(RuntimeError, match=r'model is on meta but the batch is on cpu: add DeviceCB\(\)'):
        learner(tiny_model().to('meta')).fit(1)

def test_loss_that_is_not_a_scalar():
    with pytest.raises(ValueError, match=r"loss must be a scalar tensor but loss_func returned \(16,\): use a reduction"):
        learner(loss_func=lambda p, y: F.cross_entropy(p, y, reduction='none')).fit(1)
    with pytest.raises(ValueError, match=r'loss must be a scalar tensor but loss_func returned float'):
        learner(loss_func=lambda p, y: 0.5).fit(1)

def test_loss_that_fails_names_preds_and_batch():
    "Labels out of range for a 1-output model: the loss's own error, plus the shapes of preds and batch"
    with pytest.raises(IndexError, match=r'loss function failed on the first batch: preds \(16, 1\) float32'):
        learner(nn.Linear(4, 1)).fit(1)

# --- empty data, bad arguments ---------------------------------------------------------------------------------

def test_empty_training_loader():
    xt, yt, xv, yv = tiny_data()
    dls = DataLoaders(TensorLoader(xt[:0], yt[:0]), TensorLoader(xv, yv))
    with pytest.raises(ValueError, match=r'training DataLoader is empty \(len 0\).*drop_last'): learner(dls=dls).fit(1)

def test_empty_validation_loader():
    xt, yt, xv, yv = tiny_data()
    dls = DataLoaders(TensorLoader(xt, yt), DataLoader(Dataset(xv[:0], yv[:0]), batch_size=8))
    with pytest.raises(ValueError, match='validation DataLoader is empty'): learner(dls=dls).fit(1)

def test_batch_larger_than_data_with_drop_last():
    xt, yt, xv, yv = tiny_data()
    dls = DataLoaders(TensorLoader(xt, yt, bs=100, drop_last=True), TensorLoader(xv, yv))
    with pytest.raises(ValueError, match='batch size is not larger than it with drop_last=True'): learner(dls=dls).fit(1)

class _Nothing(IterableDataset):
    def __iter__(self): return iter([])

def test_empty_loader_without_len():
    dl = DataLoader(_Nothing(), batch_size=4)
    with pytest.raises(ValueError, match='DataLoader (is empty|yielded no batch)'): learner(dls=DataLoaders(dl, dl)).fit(1)

@pytest.mark.parametrize('n', [0, -1, 1.5, True, '2'])
def test_bad_n_epochs(n):
    with pytest.raises(ValueError, match=f'n_epochs={n!r}: fit needs a whole number of epochs, at least 1'):
        learner().fit(n)

def test_no_training_step():
    with pytest.raises(NotImplementedError, match=r'nothing implements the training step `predict`: add TrainCB\(\)'):
        Learner(tiny_model(), tiny_dls(), F.cross_entropy).fit(1)

# --- metrics ----------------------------------------------------------------------------------------------------

def test_metric_given_preds_of_the_wrong_shape():
    from torcheval.metrics import MulticlassAccuracy
    model = nn.Sequential(nn.Linear(4, 6), nn.Unflatten(1, (2, 3)))   # (bs, 2, 3): not (bs, n_classes)
    learn = learner(model, loss_func=lambda p, y: p.mean(), cbs=[MetricsCB(acc=MulticlassAccuracy())])
    with pytest.raises(ValueError, match=r"(?s)metric 'acc' \(MulticlassAccuracy\) got preds of shape \(16, 2, 3\) and "
                                         r"targets of shape \(16,\).*raised in callback MetricsCB during event 'after_batch'"):
        learn.fit(1)

def test_miniai_accuracy_wrong_shape():
    from miniai.training import accuracy
    with pytest.raises(ValueError, match=r'accuracy needs `out` of shape \(n, c\).*got \(8,\) and \(8,\)'):
        accuracy(torch.zeros(8), torch.zeros(8, dtype=torch.long))

# --- callbacks ----------------------------------------------------------------------------------------------------

def test_callback_added_twice():
    cb = MetricsCB()
    with pytest.raises(ValueError, match=r'MetricsCB\(\) was added twice: it is already in learn.cbs'): learner(cbs=[cb, cb])
    learn = learner(cbs=cb)
    with pytest.raises(ValueError, match='added twice'): learn.fit(1, cbs=cb)
    assert learn.cbs.count(cb) == 1          # the failed fit did not remove the learner's own callback
    learn.fit(1)

def test_callback_class_instead_of_instance():
    with pytest.raises(TypeError, match=r'MetricsCB is a class: pass an instance, e.g. MetricsCB\(\)'):
        learner(cbs=MetricsCB)

def test_unknown_event_name():
    with pytest.raises(ValueError, match=r"unknown event 'before_bacth'; valid events: before_fit"):
        learner().callback('before_bacth')

@pytest.mark.parametrize('name,fix', [('before_bacth', 'before_batch'), ('after_prediction', 'after_predict'),
                                      ('cleanup_fitt', 'cleanup_fit')])
def test_misspelled_callback_method(name, fix):
    cb = type('Typo', (Callback,), {name: lambda self: None})()
    with pytest.raises(AttributeError, match=f"Typo.{name} is not a Learner event, so it would never run. "
                                             f"Did you mean '{fix}'"):
        learner(cbs=cb)

def test_misspelled_method_in_fit_cbs_leaves_learner_clean():
    "A bad callback among fit's `cbs`: the good ones added before it are removed again, the learner still trains"
    good, bad = MetricsCB(), type('Typo', (Callback,), {'after_epcoh': lambda self: None})()
    learn = learner()
    with pytest.raises(AttributeError, match="Did you mean 'after_epoch'"): learn.fit(1, cbs=[good, bad])
    assert learn.cbs == []
    learn.fit(1)

@pytest.mark.parametrize('name', ['befor_fit', 'afer_batch'])
def test_misspelled_event_prefix(name):
    cb = type('Typo', (Callback,), {name: lambda self: None})()
    with pytest.raises(AttributeError, match='is not a Learner event'): learner(cbs=cb)

class Count(Callback):
    def __init__(self): self.n = 0
    def before_batch(self): self.n += 1

def test_callback_appended_twice_in_place():
    learn, cb = learner(), Count()
    learn.cbs += [cb, cb]
    with pytest.raises(ValueError, match='twice'): learn.fit(1)

def test_callback_appended_in_place_gets_learn():
    learn, cb = learner(), MetricsCB()
    learn.cbs.append(cb)
    learn.fit(1)
    assert cb.learn is learn and len(cb.history) == 2

def test_misspelled_callback_appended_in_place():
    learn = learner()
    learn.cbs.append(type('Typo', (Callback,), {'after_bacth': lambda self: None})())
    with pytest.raises(AttributeError, match="Did you mean 'after_batch'"): learn.fit(1)

def test_callback_attribute_before_it_has_a_learner():
    with pytest.raises(AttributeError, match=r'Count.model reads `learn.model`, but this callback has no `learn` yet'):
        Count().model

# --- data pipeline --------------------------------------------------------------------------------------------

def test_tensor_loader_bad_input():
    x = torch.zeros(10, 3)
    with pytest.raises(ValueError, match=r'different lengths \[10, 9\]'): TensorLoader(x, torch.zeros(9))
    with pytest.raises(ValueError, match='bs must be a positive int, got 0'): TensorLoader(x, bs=0)
    with pytest.raises(TypeError, match='convert numpy arrays with torch.from_numpy'): TensorLoader(x.numpy())
    with pytest.raises(TypeError, match='needs at least one tensor'): TensorLoader()

def test_dataset_and_collate_bad_input():
    with pytest.raises(ValueError, match='x has 3 items but y has 2'): Dataset([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match='collate got an empty batch'): collate([])
    with pytest.raises(ValueError, match='bs=0: the batch size must be a positive integer'): get_dls([1], [1], 0)
    with pytest.raises(TypeError, match='the items are tuple; use default_collate'):
        collate_dict(['x', 'y'])([(torch.zeros(2), 1)])
    with pytest.raises(KeyError, match=r"missing \['y'\]"): collate_dict(['x', 'y'])([{'x': torch.zeros(2)}])

def test_training_fit_bad_input():
    model = nn.Linear(4, 2)
    opt = torch.optim.SGD(model.parameters(), 0.1)
    with pytest.raises(ValueError, match='epochs=0: pass a positive integer'): fit(0, model, F.cross_entropy, opt, [], [])
    with pytest.raises(ValueError, match='train_dl yielded no batches'): fit(1, model, F.cross_entropy, opt, [], [])

def test_to_device_unavailable():
    from miniai.conv import to_device
    if torch.cuda.is_available(): pytest.skip('CUDA is available here')
    with pytest.raises(RuntimeError, match=r"device 'cuda' is not available on this machine; pass `device=None`"):
        to_device(torch.zeros(2), 'cuda')

def test_from_dd_with_an_empty_split():
    "An empty split (e.g. a filter that kept nothing) is named, on the fast and the per-item path"
    import numpy as np
    from datasets import ClassLabel, Dataset as HFDataset, DatasetDict, Features, Image as HFImage
    feats = Features({'image': HFImage(), 'label': ClassLabel(num_classes=2)})
    ds = HFDataset.from_dict({'image': [np.zeros((4, 4), np.uint8)]*3, 'label': [0, 1, 0]}, features=feats)
    dd = DatasetDict(train=ds, test=ds.select([]))
    for fast in (True, False):
        with pytest.raises(ValueError, match=r"from_dd: split 'test' has no rows \(\{'train': 3, 'test': 0\}\)"):
            DataLoaders.from_dd(dd, 2, fast=fast)

# --- later modules: seeds, hooks, schedules -------------------------------------------------------------------

def test_get_preds_on_an_empty_loader():
    xt, yt, *_ = tiny_data()
    with pytest.raises(ValueError, match='get_preds got an empty DataLoader'):
        learner().get_preds(TensorLoader(xt[:0], yt[:0]))

def test_set_seed_bad_input():
    act = pytest.importorskip('miniai.activations')
    with pytest.raises(TypeError, match=r'seed must be an int, got True.*set_seed\(42\)'): act.set_seed(True)
    with pytest.raises(TypeError, match="seed must be an int, got 1.5"): act.set_seed(1.5)
    with pytest.raises(ValueError, match=r'seed must be in \[0, 2\*\*32\).*got -1'): act.set_seed(-1)

def test_hooks_bad_input_leaves_no_hook():
    "Hooks over a list with a non-module in it fails, and removes the hooks it had already put on the first modules"
    act = pytest.importorskip('miniai.activations')
    model = tiny_model()
    with pytest.raises(TypeError, match=r'Hook needs an nn.Module to hook, got str'):
        act.Hooks([model[0], model[2], 'relu'], lambda *a: None)
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(TypeError, match=r'wrap it in a list: Hooks\(\[m\], f\)'): act.Hooks(nn.Linear(2, 2), lambda *a: None)

def test_activation_stats_filter_picking_nothing():
    act = pytest.importorskip('miniai.activations')
    learn = learner(cbs=act.ActivationStats(lambda m: isinstance(m, nn.Conv2d)))
    with pytest.raises(ValueError, match="picked none of the model's modules"): learn.fit(1)
    assert all(not m._forward_hooks for m in learn.model.modules())

def test_schedule_bad_input():
    ann = pytest.importorskip('miniai.annealing')
    with pytest.raises(ValueError, match=r'must add up to 1, got \[0.3, 0.3\]'): ann.combine_scheds([.3, .3], [ann.sched_lin(0, 1)]*2)
    with pytest.raises(ValueError, match='got 1 percentages for 2 schedules'): ann.combine_scheds([1.], [ann.sched_lin(0, 1)]*2)
    with pytest.raises(ValueError, match='position must be between 0 and 1, got 1.5'):
        ann.combine_scheds([1.], [ann.sched_lin(0, 1)])(1.5)
    with pytest.raises(ValueError, match='both must be nonzero and have the same sign'): ann.sched_exp(0, 1)
    with pytest.raises(TypeError, match='needs a function of the position'): ann.ParamScheduler('lr', 0.1)

def test_scheduling_a_hyperparameter_the_optimizer_lacks():
    "Fails in before_fit, before any batch: no step was taken"
    ann = pytest.importorskip('miniai.annealing')
    learn = learner()
    from conftest import params, same_params
    w = params(learn.model)
    with pytest.raises(KeyError, match=r"no hyperparameter 'beta'; they have \[.*'lr'.*\]"):
        learn.fit(1, cbs=ann.ParamScheduler('beta', ann.sched_lin(0.1, 0.2)))
    assert same_params(params(learn.model), w)

def test_fit_one_cycle_bad_input():
    ann = pytest.importorskip('miniai.annealing')
    from miniai.learner import MomentumLearner
    with pytest.raises(ValueError, match='positive peak learning rate, got lr_max=-1'): learner().fit_one_cycle(1, lr_max=-1)
    with pytest.raises(ValueError, match='pct_start is the share of training'): learner().fit_one_cycle(1, pct_start=1.5)
    with pytest.raises(ValueError, match='would apply it twice: pass moms=None'):
        MomentumLearner(tiny_model(), tiny_dls(), F.cross_entropy).fit_one_cycle(1)

def test_lsuv_init_failures_leave_no_hook():
    "LSUV on a module that is not in the model, or on an input that makes the output constant: a message, no hook left"
    init = pytest.importorskip('miniai.init')
    model, stray = tiny_model(), nn.ReLU()
    xb = tiny_data()[0]
    with pytest.raises(ValueError, match='ReLU did not run in the forward pass: is it part of the model'):
        init.lsuv_init(model, stray, model[0], xb)   # (model, m measured, m_in rescaled, xb)
    with torch.no_grad(): model[0].bias.zero_()
    with pytest.raises(ValueError, match='has std 0.0: its input is constant'):
        init.lsuv_init(model, model[1], model[0], torch.zeros(16, 4))   # zero input, zero bias: the ReLU outputs 0
    assert all(not m._forward_hooks for m in [*model.modules(), stray])
    with pytest.raises(TypeError, match='ReLU has no weight to rescale'): init.lsuv_init(model, model[1], model[1], xb)

# --- Learner arguments of the wrong kind ----------------------------------------------------------------------

def test_dls_that_is_not_a_dataloaders():
    with pytest.raises(TypeError, match=r'DataLoaders\('): learner(dls=tiny_dls().train).fit(1)

def test_missing_validation_loader():
    with pytest.raises((TypeError, ValueError), match=r'valid'): learner(dls=DataLoaders(tiny_dls().train, None)).fit(1)

def test_model_that_is_not_a_module():
    with pytest.raises(TypeError, match=r'nn\.Module'): learner(model=lambda x: x).fit(1)   # checked when the fit starts

def test_callback_that_is_not_a_callback():
    with pytest.raises(TypeError, match=r'Callback'): learner(cbs=[lambda: None])

def test_optimizer_instance_as_opt_func():
    model = tiny_model()
    with pytest.raises(TypeError, match=r'opt_func.*class'):
        learner(model, opt_func=torch.optim.SGD(model.parameters(), 0.1)).fit(1)

def test_model_without_parameters():
    with pytest.raises(ValueError, match='empty parameter list'): learner(model=nn.ReLU()).fit(1)

def test_conv_bad_arguments():
    "`conv(3, 8, 3, True)` (act=True one slot early) used to build a stride-1 conv silently"
    from miniai.conv import conv
    with pytest.raises(ValueError, match='`stride` must be a positive int, got True'): conv(3, 8, 3, True)
    with pytest.raises(ValueError, match='`ks` must be a positive int, got 2.5'): conv(3, 8, ks=2.5)
    with pytest.raises(TypeError, match=r'`act` got the module instance ReLU\(\); pass the class'): conv(3, 8, act=nn.ReLU())
    with pytest.raises(TypeError, match=r'\(`nn.ReLU`, not `F.relu`\)'): conv(3, 8, act=F.relu)

def test_device_cb_fixes_the_device_mismatch():
    "The fix the device message suggests works: DeviceCB moves the model and every batch ('meta' stands in for a GPU)"
    from miniai.learner import DeviceCB
    learn = learner(cbs=[DeviceCB('meta')])
    learn.fit(1)
    assert next(learn.model.parameters()).device.type == 'meta'
    assert learn.batch[0].device.type == 'meta' and learn.loss.device.type == 'meta'
