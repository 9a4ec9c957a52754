"The `fundus-bench` command end to end: quickstart through papermill, the registry, validate."
import json, subprocess, sys, shutil
from pathlib import Path
import pytest
from conftest import ROOT

def fb(*args, cwd=None, timeout=900):
    exe = shutil.which('fundus-bench') or str(Path(sys.executable).parent/'fundus-bench')
    return subprocess.run([exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout)

def test_help_lists_commands():
    r = fb('--help')
    assert r.returncode == 0
    for c in ('quickstart', 'run', 'validate', 'experiments', 'runs'): assert c in r.stdout

def test_unknown_experiment_is_a_clear_error(tmp_path):
    r = fb('run', 'no-such-thing', '--runs-dir', tmp_path)
    assert r.returncode == 2 and "no experiment named 'no-such-thing'" in r.stderr

def test_quickstart_tiny(tmp_path):
    "A one-epoch quickstart on a handful of embedded synthetic crops writes a complete run folder."
    r = fb('quickstart', '-p', 'epochs', 1, '-p', 'n_train', 16, '-p', 'size', 64, '--runs-dir', tmp_path, '--quiet')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rd,) = list((tmp_path/'quickstart').iterdir())
    for f in ('run.json', 'params.json', 'metrics.json', 'quickstart.ipynb', 'model.pth', 'overlay.png'): assert (rd/f).exists(), f
    run = json.loads((rd/'run.json').read_text()); m = json.loads((rd/'metrics.json').read_text())
    assert run['status'] == 'done' and run['seconds'] > 0
    assert m['n_train'] == 16 and m['n_valid'] > 0
    assert 0 <= m['dice_disc'] <= 1 and 0 <= m['dice_cup'] <= 1 and m['vcdr_mae'] >= 0
    assert len(m['per_image']) == m['n_valid']
    assert 'disc_dice' in r.stdout or 'dice_disc' in r.stdout
    assert json.loads((rd/'params.json').read_text())['epochs'] == 1

def test_failed_run_is_recorded(tmp_path):
    "A run that fails keeps its executed notebook and is marked failed in the registry."
    r = fb('run', 'quickstart', '-p', 'dataset', 'no-such-dataset', '--runs-dir', tmp_path, '--quiet')
    assert r.returncode == 1 and 'Traceback' not in r.stderr and len(r.stderr.splitlines()) < 10, r.stderr[-3000:]
    assert 'fundus-bench: error: ' in r.stderr and 'no-such-dataset' in r.stderr and 'quickstart.ipynb' in r.stderr
    (rd,) = list((tmp_path/'quickstart').iterdir())
    run = json.loads((rd/'run.json').read_text())
    assert run['status'] == 'failed' and 'no-such-dataset' in run['error']
    assert (rd/'quickstart.ipynb').exists() and not (rd/'metrics.json').exists()

def test_quickstart_real_data(tmp_path, data_root):
    "The same notebook on real Drishti-GS crops (part of train held out)."
    r = fb('run', 'quickstart', '-p', 'data_root', data_root, '-p', 'dataset', 'drishti-gs', '-p', 'epochs', 1,
           '-p', 'size', 64, '--runs-dir', tmp_path, '--quiet')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (rd,) = list((tmp_path/'quickstart').iterdir())
    m = json.loads((rd/'metrics.json').read_text())
    assert m['n_train'] + m['n_valid'] == 50 and m['n_valid'] == 10

def test_validate_real_data(data_root):
    r = fb('validate', data_root)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    for name in ('drishti-gs', 'refuge', 'drishti-gs1', 'idrid-seg', 'idrid-loc'): assert name in r.stdout

def test_every_experiment_has_parameters():
    "Each experiment notebook has a cell tagged `parameters` (papermill needs it) and is skipped by nbdev_test."
    import nbformat
    from fundus_bench.experiments import list_experiments
    exps = list_experiments()
    assert 'quickstart' in exps
    for name, p in exps.items():
        nb = nbformat.read(p, as_version=4)
        assert any('parameters' in c.metadata.get('tags', []) for c in nb.cells), name
        assert nb.cells[0].cell_type == 'raw' and 'skip_exec: true' in nb.cells[0].source, name
