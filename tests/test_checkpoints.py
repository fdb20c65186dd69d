"""Learner.save / Learner.load: an exact round trip of weights and optimizer state, and a crash while saving that
leaves the previous checkpoint intact (the file is written to a temporary name, then renamed)."""
import pytest, torch, torch.nn.functional as F
from torch import nn, optim

from miniai.learner import TrainLearner
from conftest import params, same_params, tiny_dls, tiny_model, valid_loss

def learner(seed=0, **kw):
    return TrainLearner(tiny_model(seed), tiny_dls(), F.cross_entropy, lr=0.01, opt_func=optim.Adam, **kw)

def same_state(a:dict, b:dict):
    "Nested state dicts equal, tensors bit for bit"
    if isinstance(a, torch.Tensor): return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict): return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)): return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b

def test_round_trip_is_exact(tmp_path):
    learn = learner()
    learn.fit(1)
    p = learn.save(tmp_path/'sub'/'model.pth')        # the folder is created
    assert p.exists() and list(p.parent.iterdir()) == [p]    # no temporary file left behind
    other = learner(seed=1)
    assert not same_params(params(other.model), params(learn.model))
    other.load(p)
    assert same_state(other.model.state_dict(), learn.model.state_dict())
    assert same_state(other.opt.state_dict(), learn.opt.state_dict())   # Adam's moments and step counts

def test_training_continues_identically_after_load(tmp_path):
    "The fit after `load` continues with the saved optimizer state (Adam's step counts go on), the same in any learner"
    learn = learner()
    learn.fit(1)
    learn.save(tmp_path/'m.pth')
    other = learner(seed=1).load(tmp_path/'m.pth')
    learn.load(tmp_path/'m.pth')
    torch.manual_seed(5); learn.fit(1)
    torch.manual_seed(5); other.fit(1)
    assert same_params(params(other.model), params(learn.model))
    steps = {int(s['step']) for s in other.opt.state_dict()['state'].values()}
    assert steps == {8}                      # 4 batches before the checkpoint, 4 after
    other.fit(1)                             # the next fit builds a fresh optimizer again, as documented
    assert {int(s['step']) for s in other.opt.state_dict()['state'].values()} == {4}

def test_load_without_optimizer(tmp_path):
    learn = learner(); learn.fit(1); learn.save(tmp_path/'m.pth')
    other = learner(seed=1).load(tmp_path/'m.pth', with_opt=False)
    assert same_params(params(other.model), params(learn.model)) and other.opt is None

class HalfThenCrash(Exception): pass

@pytest.mark.parametrize('exc', [HalfThenCrash, KeyboardInterrupt, OSError])
def test_crash_while_saving_keeps_previous_checkpoint(tmp_path, monkeypatch, exc):
    learn = learner()
    learn.fit(1)
    p = learn.save(tmp_path/'m.pth')
    good = p.read_bytes()
    w = params(learn.model)
    learn.fit(1)                                  # new weights we try (and fail) to save
    real_save = torch.save
    def half_save(obj, f, *a, **k):
        real_save(obj, f, *a, **k)
        f.seek(0); f.truncate(len(good)//2)       # half a file on disk, then the crash
        raise exc('disk full (simulated)')
    monkeypatch.setattr(torch, 'save', half_save)
    with pytest.raises(exc): learn.save(p)
    monkeypatch.undo()
    assert p.read_bytes() == good
    assert [f.name for f in tmp_path.iterdir()] == ['m.pth']   # the half-written temporary file was removed
    other = learner(seed=1).load(p)
    assert same_params(params(other.model), w)

def test_load_into_a_different_model(tmp_path):
    learn = learner(); p = learn.save(tmp_path/'m.pth')
    other = TrainLearner(nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2)), tiny_dls(), F.cross_entropy)
    with pytest.raises(RuntimeError, match=r'size mismatch for 0.weight'): other.load(p)

def test_load_a_file_that_is_not_a_checkpoint(tmp_path):
    torch.save(torch.zeros(3), tmp_path/'t.pth')
    with pytest.raises(ValueError, match=r"t.pth is not a Learner checkpoint .*was it written by Learner.save"):
        learner().load(tmp_path/'t.pth')

def test_load_a_truncated_checkpoint_names_the_file(tmp_path):
    learn = learner(); p = learn.save(tmp_path/'m.pth')
    p.write_bytes(p.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='m.pth'): learn.load(p)

def test_loaded_model_gives_the_same_predictions(tmp_path):
    learn = learner(); learn.fit(2); learn.save(tmp_path/'m.pth')
    other = learner(seed=1).load(tmp_path/'m.pth')
    pa, ta = learn.get_preds(); pb, tb = other.get_preds()
    assert torch.equal(pa, pb) and torch.equal(ta, tb)
    assert valid_loss(other) == valid_loss(learn)

def test_lr_find_between_load_and_fit_keeps_the_loaded_optimizer(tmp_path):
    "load -> lr_find -> fit: the LR finder restores the weights and the loaded optimizer, so the fit continues from both"
    learn = learner(); learn.fit(1); learn.save(tmp_path/'m.pth')
    a, b = learner(seed=1).load(tmp_path/'m.pth'), learner(seed=2).load(tmp_path/'m.pth')
    a.lr_find(plot=False)
    assert same_params(params(a.model), params(b.model))
    torch.manual_seed(3); a.fit(1)
    torch.manual_seed(3); b.fit(1)
    assert same_params(params(a.model), params(b.model))
    assert {int(s['step']) for s in a.opt.state_dict()['state'].values()} == {8}

def test_get_preds_restores_the_mode_after_an_error():
    class Fails(nn.Module):
        def forward(self, x): raise RuntimeError('forward failed')
    learn = TrainLearner(Fails(), tiny_dls(), F.cross_entropy)
    learn.model.train()
    with pytest.raises(RuntimeError, match='forward failed'): learn.get_preds()
    assert learn.model.training

def test_momentum_learner_round_trip(tmp_path):
    from miniai.learner import MomentumLearner
    a = MomentumLearner(tiny_model(0), tiny_dls(), F.cross_entropy, lr=0.1); a.fit(1)
    a.save(tmp_path/'m.pth')
    b = MomentumLearner(tiny_model(1), tiny_dls(), F.cross_entropy, lr=0.1).load(tmp_path/'m.pth')
    torch.manual_seed(3); a.fit(1)
    torch.manual_seed(3); b.fit(1)
    assert same_params(params(a.model), params(b.model))
