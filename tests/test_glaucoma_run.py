"A run folder wherever a model is: a glaucoma run's ensemble and features classifier through `evaluate` and `predict`, a run folder of several models."
import csv, json, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from conftest import ROOT

def fb(*args, timeout=600):
    exe = shutil.which('fundus-bench') or str(Path(sys.executable).parent/'fundus-bench')
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=timeout, env={**__import__('os').environ, 'OMP_NUM_THREADS': '1'})

@pytest.fixture(scope='module')
def glaucoma_run(tmp_path_factory):
    "A glaucoma run folder of tiny untrained models: two CNN folds, one segmenter, features classifiers."
    import torch
    from fundus_bench.models.registry import save_model, build_model
    from fundus_bench.models.classify import GlaucomaClassifier
    from fundus_bench.tasks.glaucoma import save_features_clf, FEATURES
    d = tmp_path_factory.mktemp('glaucoma_run'); torch.manual_seed(0)
    for f, p in [(0, 'div255'), (1, 'zlm')]:
        save_model(GlaucomaClassifier(variant='b0'), d/f'models/fold{f}_{p}', 'classifier', dict(variant='b0'), size=32,
                   channels=('glaucoma',), task='glaucoma', prep=p)
    save_model(build_model('unet', depth=2, width=4), d/'models/seg_fold0', 'unet', dict(depth=2, width=4), size=32, task='discup', role='features')
    rng = np.random.default_rng(0)
    save_features_clf(d, rng.normal(size=(30, len(FEATURES))), np.r_[np.ones(10), np.zeros(20)], cnn=rng.uniform(0.1, 0.9, 30))
    return d

def test_evaluate_glaucoma_run(glaucoma_run, tmp_path):
    "`evaluate --model RUN_DIR` scores the run's ensemble (not 'model.pth: weights file missing') and names the models it used."
    from fundus_bench.core import embedded_data
    r = fb('evaluate', '--model', glaucoma_run, '--dataset', 'synthetic', '--data', embedded_data(), '--split', 'train',
           '--names', 'g_A_train_0008,g_A_train_0009,n_A_train_0000', '--device', 'cpu', '--out', tmp_path/'ev')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'using 2 models (models/fold0_div255, models/fold1_zlm)' in r.stderr
    assert 'reports the combined probability: 2 CNN classifiers + 1 segmenter and features_clf.json' in r.stderr
    m = json.loads((tmp_path/'ev/metrics.json').read_text())
    assert m['task'] == 'glaucoma' and m['n'] == 3 and m['reported'] == 'combined' and len(m['models']) == 2
    rows = list(csv.DictReader(open(tmp_path/'ev/per_image.csv')))
    assert len(rows) == 3 and {'probability', 'p_cnn', 'p_features', 'p_combined', 'vcdr', 'rim_I', 'ecc'} <= set(rows[0])

def test_predict_glaucoma_run(glaucoma_run, tmp_path):
    "`predict --model GLAUCOMA_RUN` writes one row a photograph: probability, every score, the features; an unreadable file is a row, not a traceback."
    from fundus_bench.core import embedded_data
    src = sorted((embedded_data()/'synthetic').rglob('crop/image/*.png'))[:2]
    (tmp_path/'in').mkdir()
    for f in src: shutil.copy(f, tmp_path/'in'/f.name)
    (tmp_path/'in/broken.png').write_bytes(b'not a png')
    r = fb('predict', tmp_path/'in', '--model', glaucoma_run, '--out', tmp_path/'out', '--device', 'cpu')
    assert r.returncode == 0 and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert '2 of 3 images scored (combined probability), 1 unreadable' in r.stdout and 'broken.png' in r.stderr
    rows = list(csv.DictReader(open(tmp_path/'out/glaucoma.csv')))
    ok = [o for o in rows if o['status'] == 'ok']
    assert len(rows) == 3 and len(ok) == 2 and all(0 <= float(o['probability']) <= 1 for o in ok)
    assert {'p_cnn', 'p_features', 'p_combined', 'vcdr', 'hcdr', 'rim_Hmin', 'ecc_v'} <= set(rows[0])

def test_run_folder_of_several_models(tmp_path):
    "A run folder with a [disc, cup] model and a locator in sub-folders: `evaluate` uses the [disc, cup] one and says so; two [disc, cup] models are a clear error."
    from fundus_bench.core import embedded_data
    from fundus_bench.models.registry import save_model, build_model
    save_model(build_model('unet', depth=2, width=4), tmp_path/'run/segmenter', 'unet', dict(depth=2, width=4), size=32)
    save_model(build_model('unet', depth=2, width=4), tmp_path/'run/locator', 'unet',
               dict(depth=2, width=4), size=32, channels=('disc',), role='locator')
    args = ('--dataset', 'synthetic', '--data', embedded_data(), '--split', 'train', '--names', 'g_A_train_0008', '--device', 'cpu')
    r = fb('evaluate', '--model', tmp_path/'run', *args, '--out', tmp_path/'ev')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'using 1 model (segmenter)' in r.stderr
    shutil.copytree(tmp_path/'run/segmenter', tmp_path/'run/segmenter2')
    r = fb('evaluate', '--model', tmp_path/'run', *args, '--out', tmp_path/'ev2')
    assert r.returncode == 2 and 'Traceback' not in r.stderr and 'holds 2 models that could serve here (segmenter, segmenter2)' in r.stderr

def test_experiment_keeps_what_its_run_folder_needs(tmp_path):
    "A tiny refuge2_glaucoma run on the embedded crops: out-of-fold rows for the features classifier alone and with the CNN, a run folder that scores another set."
    r = fb('run', 'refuge2_glaucoma', '-p', 'k', 2, '-p', 'epochs', 1, '-p', 'size', 32, '-p', 'seg_steps', 10, '-p', 'seg_size', 32,
           '-p', 'preps', 'div255', '-p', 'cross_dataset', 'synthetic', '-p', 'cross_split', 'test', '--runs-dir', tmp_path, '--quiet', timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    (rd,) = list((tmp_path/'refuge2_glaucoma').iterdir())
    m = json.loads((rd/'metrics.json').read_text())
    assert {'features classifier (vCDR, rim, eccentricity)', 'features + CNN ensemble'} <= set(m['results'])
    assert m['cross']['n'] == 60 and m['cross']['reported'] == 'combined' and {'auroc_cnn', 'auroc_features', 'auroc_combined'} <= set(m['cross'])
    clf = json.loads((rd/'features_clf.json').read_text())
    assert clf['combined']['features'][-1] == 'cnn_logit' and len(clf['features']['members']) == 3
    assert sorted(p.name for p in (rd/'models').iterdir()) == ['fold0_div255', 'fold1_div255', 'seg_fold0', 'seg_fold1']
