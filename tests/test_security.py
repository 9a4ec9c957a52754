"Untrusted files: checkpoints carrying code are refused by every loader; names from CSVs and parameters stay inside their roots."
import os, sys, pickle
from pathlib import Path
import pytest, torch, torch.nn as nn
from fundus_bench.core import BadFileError, safe_join
from fundus_bench.train.core import load_weights, save_model, load_model
from fundus_bench.train.checkpoint import load_checkpoint, save_checkpoint
from fundus_bench.models.unet import GeneralizedUNet

class Payload:
    "Unpickling this calls `open(marker, 'w')`: the marker file appears only if code ran."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (open, (self.marker, 'w'))

def evil_file(path, marker, model=None):
    "A checkpoint that looks right (model tensors, epoch) but carries `Payload`."
    sd = (model or nn.Linear(3, 2)).state_dict()
    torch.save({'model': dict(sd), 'epoch': 1, 'extra': Payload(marker)}, path)
    return path

def test_payload_is_real(tmp_path):
    "Control: an unrestricted unpickler does run the payload, so the tests below show refusal, not a dud."
    marker = tmp_path/'ran.txt'
    torch.load(evil_file(tmp_path/'e.pth', marker), weights_only=False)
    assert marker.exists()

def test_load_weights_refuses_code(tmp_path):
    marker = tmp_path/'ran.txt'
    f = evil_file(tmp_path/'evil.pth', marker)
    with pytest.raises(BadFileError, match='not a loadable weights-only checkpoint'): load_weights(nn.Linear(3, 2), f)
    assert not marker.exists()

def test_load_checkpoint_refuses_code(tmp_path):
    marker = tmp_path/'ran.txt'
    f = evil_file(tmp_path/'checkpoint.pth', marker)
    with pytest.raises(BadFileError, match='not a loadable weights-only checkpoint'): load_checkpoint(f)
    assert not marker.exists()

def test_load_model_refuses_code(tmp_path):
    "A run folder whose model.pth was replaced by a booby-trapped file."
    m = GeneralizedUNet(depth=2, width=4)
    save_model(m, tmp_path, 'unet', dict(depth=2, width=4), size=32)
    marker = tmp_path/'ran.txt'
    evil_file(tmp_path/'model.pth', marker, m)
    with pytest.raises(BadFileError, match='not a loadable weights-only checkpoint'): load_model(tmp_path)
    assert not marker.exists()

def test_fit_resumable_refuses_code(tmp_path):
    "Resuming never unpickles a planted checkpoint: it fails before training starts."
    from fundus_bench.train.checkpoint import fit_resumable
    marker = tmp_path/'ran.txt'
    evil_file(tmp_path/'checkpoint.pth', marker)
    with pytest.raises(BadFileError): fit_resumable(object(), 2, 1e-3, tmp_path)
    assert not marker.exists()

def test_good_files_still_load(tmp_path):
    m = nn.Linear(3, 2)
    save_checkpoint(tmp_path/'c.pth', {'model': m.state_dict(), 'epoch': 3})
    assert load_checkpoint(tmp_path/'c.pth')['epoch'] == 3
    assert torch.equal(load_weights(nn.Linear(3, 2), tmp_path/'c.pth').weight, m.weight)

@pytest.mark.parametrize('name', ['../outside.png', '../../etc/passwd', 'a/../../b.png', '/etc/passwd'])
def test_safe_join_refuses_escapes(tmp_path, name):
    with pytest.raises(BadFileError, match='escapes the dataset root'): safe_join(tmp_path/'root', name)

def test_safe_join_keeps_inside(tmp_path):
    assert safe_join(tmp_path, 'a/../b.png') == (tmp_path/'b.png').resolve()

def test_points_csv_escaping_names_are_refused(tmp_path):
    "The catalog's CSV reader drops rows naming files outside the image folder, and says which."
    from fundus_bench.data.files import read_points_csv
    (tmp_path/'img').mkdir()
    f = tmp_path/'points.csv'
    f.write_text('name,x,y\nok.png,1,2\n../secret.png,3,4\n../../etc/passwd,5,6\n/etc/shadow,7,8\nsub/../fine.png,9,9\n')
    pts, probs = read_points_csv(f, folder=tmp_path/'img', cols={'x': 'x', 'y': 'y'})
    assert set(pts) == {'ok', 'fine'}   # `sub/../fine.png` stays inside: kept
    msgs = [m for _, m in probs]
    assert len(msgs) == 3 and all('escapes the dataset root' in m for m in msgs)
    assert any("line 3: '../secret.png'" in m for m in msgs)

def test_synthetic_catalog_ignores_escaping_points(tmp_path):
    "A dataset whose points.csv names `../` files: the samples are found, the bad rows listed as problems."
    from fundus_bench.data.synthetic import write_synthetic
    from fundus_bench.data.catalog import get_dataset
    write_synthetic(tmp_path, splits={'train': 2}, whole={}, size=128, crop_size=64, lesions=False, seed=0)
    (csvf,) = [p for p in tmp_path.rglob('points.csv') if p.parent.name == 'crop']
    lines = csvf.read_text().splitlines()
    first = lines[1].split(',')
    lines.append(','.join(['../../../../outside'] + first[1:]))
    csvf.write_text('\n'.join(lines) + '\n')
    ds = get_dataset('synthetic', tmp_path, 'train')
    ss = ds.samples()
    assert len(ss) == 2 and all(s.image.resolve().is_relative_to(tmp_path.resolve()) for s in ss)
    assert any('escapes the dataset root' in str(p) for p in ds.problems)

def test_run_parameters_cannot_redirect_out_dir(tmp_path, monkeypatch):
    "`-p out_dir ../../elsewhere` is overridden: a run writes only into its own run folder."
    import nbformat
    from fundus_bench.experiments import run_experiment, read_json
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('out_dir = None', metadata={'tags': ['parameters']}),
                nbformat.v4.new_code_cell('from fundus_bench.experiments import save_metrics\nsave_metrics(out_dir, {"ok": 1})')]
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    (tmp_path/'exps').mkdir(); nbformat.write(nb, tmp_path/'exps'/'00_tiny.ipynb')
    monkeypatch.setenv('FUNDUS_BENCH_EXPERIMENTS', str(tmp_path/'exps'))
    rd = run_experiment('tiny', {'out_dir': str(tmp_path/'runs'/'..'/'..'/'elsewhere')}, runs_dir=tmp_path/'runs', log_output=False)
    assert read_json(rd/'params.json')['out_dir'] == str(rd.resolve())
    assert (rd/'metrics.json').exists() and not (tmp_path.parent/'elsewhere').exists()
