"Ray on this machine (`ray.init(num_cpus=2)`): a two-point sweep of the quickstart and a sharded prediction give what one machine gives."
import json, os, pytest, torch
from pathlib import Path
ray = pytest.importorskip('ray', reason='Ray is an optional extra: pip install -e ".[ray]"')
from fundus_bench.cluster import grid_points, parse_grid, run_many

TINY = [('epochs', '1'), ('n_train', '8'), ('size', '32'), ('depth', '2'), ('width', '4'), ('lr', '1e-3,3e-3')]

@pytest.fixture(scope='module')
def local_ray():
    os.environ.setdefault('OMP_NUM_THREADS', '1')
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()

def _metrics(r): return json.loads(Path(r['run_dir'], 'metrics.json').read_text())

def test_sweep_on_ray_equals_here(local_ray, tmp_path):
    pts = grid_points(parse_grid(TINY))
    assert [p['lr'] for p in pts] == [1e-3, 3e-3]
    todo = [('quickstart', p) for p in pts]
    on_ray = sorted(run_many(todo, tmp_path/'ray', ray='local'), key=lambda r: r['params']['lr'])
    here = sorted(run_many(todo, tmp_path/'here'), key=lambda r: r['params']['lr'])
    assert [r['status'] for r in on_ray + here] == ['done']*4
    assert all(Path(r['run_dir']).parent == tmp_path/'ray'/'quickstart' for r in on_ray)   # gathered into the registry
    for a, b in zip(on_ray, here):
        ma, mb = _metrics(a), _metrics(b)
        for k in ('dice_disc', 'dice_cup', 'vcdr_mae', 'n_train', 'params'): assert ma[k] == pytest.approx(mb[k], abs=1e-6), k
        assert json.loads(Path(a['run_dir'], 'params.json').read_text())['out_dir'] == str(Path(a['run_dir']).resolve())
        wa, wb = (torch.load(Path(r['run_dir'], 'model.pth'), weights_only=True) for r in (a, b))
        assert wa.keys() == wb.keys() and all(torch.allclose(wa[k].float(), wb[k].float(), atol=1e-6) for k in wa)   # the same training
    w1, w2 = (torch.load(Path(r['run_dir'], 'model.pth'), weights_only=True) for r in on_ray)
    assert any(not torch.equal(w1[k], w2[k]) for k in w1)                                                  # ...of two different points


@pytest.fixture(scope='module')
def crops(tmp_path_factory):
    "A tiny random [disc, cup] U-Net saved as a run folder, and a folder of 6 embedded synthetic crops."
    import shutil
    from fundus_bench.core import embedded_data
    from fundus_bench.data.catalog import get_dataset
    from fundus_bench.models.unet import GeneralizedUNet
    from fundus_bench.train.core import save_model
    d = tmp_path_factory.mktemp('predict')
    torch.manual_seed(0)
    save_model(GeneralizedUNet(depth=2, width=4), d/'seg', 'unet', dict(depth=2, width=4), size=64, dataset='synthetic')
    (d/'in').mkdir()
    for s in get_dataset('synthetic', embedded_data(), 'test').samples()[:6]: shutil.copy(s.image, d/'in'/s.image.name)
    return d/'seg', d/'in'

def _predict(*args):
    import contextlib, io
    from fundus_bench.cli import main
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()): rc = main(['predict', *map(str, args), '--device', 'cpu'])
    return rc, err.getvalue()

def _csv(out):
    import csv
    return {r['name']: {k: r[k] for k in ('status', 'vcdr', 'confidence', 'disc_x0', 'disc_y1')} for r in csv.DictReader(open(out/'vcdr.csv'))}

def test_shards_merge_into_one_folder(crops, tmp_path):
    seg, src = crops
    rc, _ = _predict(src, '--model', seg, '--out', tmp_path/'one'); assert rc == 0
    for i in range(3):
        rc, log = _predict(src, '--model', seg, '--out', tmp_path/'sharded', '--shard', f'{i}/3'); assert rc == 0
        assert '2 of 6 images' in log, log
    one, sharded = _csv(tmp_path/'one'), _csv(tmp_path/'sharded')
    assert len(one) == 6 and sharded == one                               # one CSV, the single machine's rows
    rc, log = _predict(src, '--model', seg, '--out', tmp_path/'sharded', '--shard', '1/3')
    assert rc == 0 and '2 done earlier, 0 to predict' in log               # a re-run finishes only what is missing
    with pytest.raises(SystemExit): _predict(src, '--model', seg, '--out', tmp_path/'x', '--shard', '3/3')

def test_predict_on_ray_equals_here(local_ray, crops, tmp_path):
    seg, src = crops
    rc, _ = _predict(src, '--model', seg, '--out', tmp_path/'one'); assert rc == 0
    rc, log = _predict(src, '--model', seg, '--out', tmp_path/'ray', '--ray', 'local', '--bs', '2')
    assert rc == 0 and 'Ray workers' in log, log
    assert _csv(tmp_path/'ray') == _csv(tmp_path/'one')
    assert '6 done earlier, 0 to predict' in log                          # the workers did the predicting; this process merged the CSV
