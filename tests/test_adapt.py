"`fundus-bench adapt`: a disc/cup model adapted to a folder of unlabelled photographs is a run folder that `predict` and `evaluate` take like any other; bad input is one clear line."
import json, shutil
from pathlib import Path
import pytest, torch
from fundus_bench.cli import main
from fundus_bench.core import embedded_data, atomic_write_json
from fundus_bench.models.registry import save_model
from fundus_bench.models.unet import GeneralizedUNet

IMAGES = embedded_data('synthetic', 'B', 'test', 'crop', 'image')   # another synthetic camera than the source's (A)

@pytest.fixture
def run(tmp_path):
    "A tiny untrained U-Net saved as a disc/cup run of the synthetic camera A, and a folder of 6 camera-B photographs."
    torch.manual_seed(0)
    rd = tmp_path/'src'
    save_model(GeneralizedUNet(depth=2, width=4), rd, 'unet', dict(depth=2, width=4), size=32, dataset='synthetic', thr=0.5)
    atomic_write_json(rd/'params.json', dict(dataset='synthetic', size=32))
    imgs = tmp_path/'camera'; imgs.mkdir()
    for f in sorted(IMAGES.glob('*.png'))[:6]: shutil.copy(f, imgs/f.name)
    return rd, imgs

def _err(capsys):
    e = capsys.readouterr().err.strip().splitlines()
    return [l for l in e if l.startswith('fundus-bench: error:')]

@pytest.mark.parametrize('method', ['adabn', 'tent'])
def test_adapt_then_predict_and_evaluate(run, tmp_path, capsys, method):
    rd, imgs = run; out = tmp_path/'adapted'
    args = ['--method', method, '--out', out, '--device', 'cpu'] + (['--steps', '2'] if method == 'tent' else [])
    assert main(['adapt', '--model', str(rd), '--images', str(imgs), *map(str, args)]) == 0
    o = capsys.readouterr().out
    assert 'verdict:' in o and 'disc agreement across 8 views' in o and str(out) in o
    spec, m = json.loads((out/'model.json').read_text()), json.loads((out/'metrics.json').read_text())
    assert spec['adapt']['method'] == method and spec['adapted_from'] == str(rd.resolve()) and spec['size'] == 32
    assert m['n_images'] == 6 and set(m['before']) == set(m['after']) and m['verdict'] in ('collapsed', 'likely helped', 'likely harmed', 'unclear')
    sd0, sd1 = torch.load(rd/'model.pth', weights_only=True), torch.load(out/'model.pth', weights_only=True)
    assert any(not torch.equal(sd0[k], sd1[k]) for k in sd0 if k.endswith('running_mean'))   # the statistics moved to camera B
    assert main(['predict', str(imgs), '--model', str(out), '--out', str(tmp_path/'pred'), '--device', 'cpu']) == 0
    assert len(list((tmp_path/'pred'/'masks').glob('*.png'))) == 6
    assert main(['evaluate', '--model', str(out), '--dataset', 'synthetic', '--data', str(embedded_data()), '--split', 'test',
                 '--domain', 'B', '--names', ','.join(f.stem for f in sorted(imgs.iterdir())[:3]), '--out', str(tmp_path/'ev'), '--device', 'cpu']) == 0
    assert json.loads((tmp_path/'ev'/'metrics.json').read_text())['n'] == 3

def test_adapt_adversarial_uses_the_source_run(run, tmp_path):
    rd, imgs = run
    assert main(['adapt', '--model', str(rd), '--images', str(imgs), '--method', 'adversarial', '--steps', '1', '--bs', '4',
                 '--out', str(tmp_path/'adv'), '--device', 'cpu']) == 0
    m = json.loads((tmp_path/'adv'/'metrics.json').read_text())
    assert m['fit']['source'] > 0 and [h['stage'] for h in m['fit']['history']][-1] == 2

def test_adapt_bad_input_is_one_line(run, tmp_path, capsys):
    rd, imgs = run
    empty = tmp_path/'empty'; empty.mkdir()
    assert main(['adapt', '--model', str(rd), '--images', str(empty), '--out', str(tmp_path/'a')]) == 2
    assert _err(capsys) == [f'fundus-bench: error: no images in {empty}']
    assert main(['adapt', '--model', str(tmp_path/'nope'), '--images', str(imgs), '--out', str(tmp_path/'b'), '--device', 'cpu']) == 2
    e = _err(capsys); assert len(e) == 1 and 'nope' in e[0] and 'no such model' in e[0]
    (rd/'params.json').unlink()
    assert main(['adapt', '--model', str(rd), '--images', str(imgs), '--method', 'adversarial', '--out', str(tmp_path/'c'), '--device', 'cpu']) == 2
    e = _err(capsys); assert len(e) == 1 and 'params.json' in e[0] and not (tmp_path/'c'/'model.json').exists()
    assert main(['adapt', '--model', str(rd), '--images', str(imgs), '--out', str(tmp_path), '--device', 'cpu']) == 2
    e = _err(capsys); assert len(e) == 1 and 'inside the output folder' in e[0]
    assert main(['adapt', '--model', str(rd), '--images', str(imgs), '--out', str(rd), '--device', 'cpu']) == 2   # never over a model
    e = _err(capsys); assert len(e) == 1 and 'already holds a model' in e[0]
    les = tmp_path/'les'; save_model(GeneralizedUNet(depth=2, width=4), les, 'unet', dict(depth=2, width=4), size=32, task='lesions')
    assert main(['adapt', '--model', str(les), '--images', str(imgs), '--out', str(tmp_path/'d'), '--device', 'cpu']) == 2
    e = _err(capsys); assert len(e) == 1 and 'lesions model' in e[0]
    with pytest.raises(SystemExit) as ex: main(['adapt', '--model', str(rd), '--images', str(imgs), '--method', 'bn'])
    assert ex.value.code == 2
