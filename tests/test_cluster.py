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
