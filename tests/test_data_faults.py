"Fault injection for miniai.fashion_mnist: missing, truncated and corrupt files, unwritable and interrupted caches."
import gzip, os
from pathlib import Path

import numpy as np, pytest, torch
import miniai.fashion_mnist as fm


def write_idx(fn:Path, a:np.ndarray, gz=True):
    "Write `a` (uint8) as an IDX file"
    data = bytes([0, 0, 8, a.ndim]) + b''.join(int(s).to_bytes(4, 'big') for s in a.shape) + a.tobytes()
    fn.write_bytes(gzip.compress(data) if gz else data)

@pytest.fixture
def small_data(tmp_path):
    "A tiny Fashion-MNIST-shaped data folder: 50 train and 20 test images"
    d = tmp_path/'data'; d.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (('train', 50), ('t10k', 20)):
        write_idx(d/f'{split}-images-idx3-ubyte.gz', rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(d/f'{split}-labels-idx1-ubyte.gz', rng.integers(0, 10, (n,), dtype=np.uint8))
    fm._mem_cache.clear()
    yield d
    fm._mem_cache.clear()

def test_small_data_loads(small_data):
    xt, yt, xv, yv = fm.load_fashion_mnist(small_data)
    assert xt.shape == (50, 28, 28) and yv.shape == (20,) and yt.dtype == torch.int64

def test_unpacked_files_are_found(small_data):
    "Files that were gunzipped by hand are read too"
    for f in small_data.glob('*.gz'):
        f.with_suffix('').write_bytes(gzip.decompress(f.read_bytes())); f.unlink()
    assert fm.load_fashion_mnist(small_data)[0].shape == (50, 28, 28)

def test_missing_directory(tmp_path):
    with pytest.raises(fm.DataNotFoundError, match='no such folder') as e: fm.load_fashion_mnist(tmp_path/'absent')
    assert 'apt-get install dataset-fashion-mnist' in str(e.value) and 'MINIAI_DATA' in str(e.value)

def test_missing_one_file(small_data):
    (small_data/'t10k-labels-idx1-ubyte.gz').unlink()
    with pytest.raises(fm.DataNotFoundError, match=str(small_data)): fm.load_fashion_mnist(small_data)

def test_nothing_anywhere_and_no_hub(tmp_path, monkeypatch, capsys):
    "No local files and no Hub: one error listing every folder tried and both fixes"
    monkeypatch.setattr(fm, 'fm_search_dirs', lambda path=None: [Path(path)] if path else [tmp_path/'a', tmp_path/'b'])
    import datasets
    def offline(*a, **k): raise ConnectionError('Hub unreachable (simulated)')
    monkeypatch.setattr(datasets, 'load_dataset', offline)
    fm._mem_cache.clear()
    for f in (fm.load_fashion_mnist, fm.fashion_mnist_dd):
        with pytest.raises(fm.DataNotFoundError) as e: f()
        msg = str(e.value)
        for s in (str(tmp_path/'a'), str(tmp_path/'b'), 'apt-get install', 'MINIAI_DATA', 'Hub failed too'): assert s in msg
    assert 'trying the Hugging Face Hub' in capsys.readouterr().err

def test_hub_fallback_when_no_local_files(tmp_path, monkeypatch, small_data):
    "With no local files the Hub's DatasetDict is used (simulated here with a local one of the same schema)"
    dd = fm.fashion_mnist_dd(small_data, cache_dir=tmp_path/'c')
    monkeypatch.setattr(fm, 'fm_search_dirs', lambda path=None: [Path(path)] if path else [tmp_path/'none'])
    import datasets
    monkeypatch.setattr(datasets, 'load_dataset', lambda name: dd if name == fm.hub_name else None)
    fm._mem_cache.clear()
    xt, yt, xv, yv = fm.load_fashion_mnist()
    ref = fm.load_fashion_mnist(small_data)
    assert torch.equal(xt, ref[0]) and torch.equal(yv, ref[3])

@pytest.mark.parametrize('name', list(fm.fm_files.values()))
def test_truncated_file_named(small_data, name):
    f = small_data/f'{name}.gz'
    f.write_bytes(f.read_bytes()[:-20])
    with pytest.raises(fm.CorruptDataError, match=name): fm.load_fashion_mnist(small_data)

def test_corrupt_header_named(small_data):
    f = small_data/'train-images-idx3-ubyte.gz'
    f.write_bytes(gzip.compress(b'this is not an idx file at all'))
    with pytest.raises(fm.CorruptDataError, match='train-images-idx3-ubyte.gz: not an IDX file'): fm.load_fashion_mnist(small_data)

def test_not_gzip_named(small_data):
    f = small_data/'train-labels-idx1-ubyte.gz'
    f.write_bytes(b'garbage that is not gzip')
    with pytest.raises(fm.CorruptDataError, match='train-labels-idx1-ubyte.gz'): fm.load_fashion_mnist(small_data)

def test_image_label_count_mismatch(small_data):
    write_idx(small_data/'train-labels-idx1-ubyte.gz', np.zeros(49, dtype=np.uint8))
    with pytest.raises(fm.CorruptDataError, match='50 images but .* has 49 labels'): fm.load_fashion_mnist(small_data)

def test_cache_round_trip(small_data, tmp_path):
    dd = fm.fashion_mnist_dd(small_data, cache_dir=tmp_path/'c')
    dd2 = fm.fashion_mnist_dd(small_data, cache_dir=tmp_path/'c')
    assert dd2.num_rows == {'train': 50, 'test': 20}
    assert dd2['train'].features == fm.fm_features()
    x = fm.load_fashion_mnist(small_data)[0]
    assert np.array_equal(np.asarray(dd2['train'][7]['image']), x[7].numpy())
    assert len(list((tmp_path/'c').iterdir())) == 1  # the cache and nothing else

def test_unwritable_cache_dir(small_data, tmp_path, capsys):
    "A cache folder that cannot be created: a message, and the data still loads"
    blocker = tmp_path/'file'; blocker.write_text('x')
    dd = fm.fashion_mnist_dd(small_data, cache_dir=blocker/'cache')
    assert dd.num_rows == {'train': 50, 'test': 20}
    assert 'not writable' in capsys.readouterr().err

def test_interrupted_cache_write_is_never_read(small_data, tmp_path, monkeypatch):
    "A crash in the middle of writing the cache leaves nothing that a later run reads"
    from datasets import DatasetDict
    real = DatasetDict.save_to_disk
    def crash(self, path, *a, **k):
        Path(path).mkdir(parents=True); (Path(path)/'half-written').write_text('x')
        raise KeyboardInterrupt
    monkeypatch.setattr(DatasetDict, 'save_to_disk', crash)
    with pytest.raises(KeyboardInterrupt): fm.fashion_mnist_dd(small_data, cache_dir=tmp_path/'c')
    assert list((tmp_path/'c').iterdir()) == []          # no temporary folder, no final folder
    monkeypatch.setattr(DatasetDict, 'save_to_disk', real)
    assert fm.fashion_mnist_dd(small_data, cache_dir=tmp_path/'c').num_rows['train'] == 50

def test_stale_incomplete_cache_folder_is_replaced(small_data, tmp_path):
    "A folder with the cache's final name but without dataset_dict.json (e.g. copied half-way) is rebuilt"
    fm.fashion_mnist_dd(small_data, cache_dir=tmp_path/'c')
    dest = next((tmp_path/'c').iterdir())
    (dest/'dataset_dict.json').unlink()
    assert fm.fashion_mnist_dd(small_data, cache_dir=tmp_path/'c').num_rows['test'] == 20
    assert (dest/'dataset_dict.json').exists()

def test_search_order(monkeypatch, tmp_path):
    monkeypatch.setenv('MINIAI_DATA', str(tmp_path))
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path/'xdg'))
    monkeypatch.delenv('MINIAI_CACHE', raising=False)
    assert fm.fm_search_dirs() == [tmp_path, tmp_path/'fashion-mnist', fm.debian_dir, tmp_path/'xdg'/'miniai'/'fashion-mnist']
    assert fm.fm_search_dirs(tmp_path/'x') == [tmp_path/'x']
