"Red-Seg across modules: synthetic lesion patches -> two-stage learner -> whole-image inference and scores."
import math, numpy as np, torch
import pytest
from fundus_bench.data.synthetic import make_fundus
from fundus_bench.data.patches import lesion_item, lesion_dls, sliding_probs, LesionScores, cached_item
from fundus_bench.losses_redseg import TopKBCE, FnFpLoss, lam_schedule
from fundus_bench.train.two_stage import redseg_learner

@pytest.fixture(scope='module')
def items():
    out = []
    for i in range(4):
        d = make_fundus(i, 128, lesions=True)
        out.append(lesion_item(d['img'], d['lesions'], name=f'syn{i}'))
    return out

def test_two_stage_on_synthetic_lesions(items):
    torch.manual_seed(0)
    dls = lesion_dls(items[:3], items[3:], patch=64, bs=4, n_train=8, n_valid=4, p_pos=0.8, device='cpu')
    assert dls.one_batch()[1].sum() > 0                                   # positive-biased patches hold lesions
    learn = redseg_learner(dls, max1=3, max2=2, model_kw=dict(width=1/8, bn=True), l1=TopKBCE(lam0=6, S=2, step=2, lam_min=2), verbose=False)
    with learn.no_bar(), learn.no_logging(): learn.fit_two_stage(1e-3)
    cb = learn.two_stage_switcher
    assert [o['stage'] for o in cb.log] == [1, 1, 1, 2, 2] and cb.switched_at == 3
    assert [o['lam'] for o in cb.log[:3]] == [lam_schedule(r, 6, 2, 2, 2) for r in range(3)] == [6, 6, 4]
    assert isinstance(learn.loss_func.base, FnFpLoss)
    assert all(math.isfinite(o['loss']) for o in cb.log)
    assert all({'MA_side', 'MA_fused', 'HE_side', 'HE_fused'} <= set(o) for o in cb.log)
    it = items[3]
    p = sliding_probs(learn.model, it['img'], patch=64, bs=4, fov=it['fov'], device='cpu')
    assert p.shape == (2, 128, 128) and p.min() >= 0 and p.max() <= 1 and (p[:, ~it['fov']] == 0).all()
    r = LesionScores().add(p, it['les']).result()
    for les in ('MA', 'HE'):
        assert set(r[les]) >= {'precision', 'recall', 'aupr'} and 0 <= r[les]['aupr'] <= 1

def test_idrid_image_cached_at_reduced_scale(data_root, tmp_path):
    from fundus_bench.data.catalog import get_dataset
    s = get_dataset('idrid-seg', data_root, 'train').samples()[0]
    it = cached_item(s, scale=8, cache_dir=tmp_path)
    assert it['full_shape'] == (2848, 4288) and it['img'].shape == (356, 536, 3) and it['les'].shape == (2, 356, 536)
    assert it['les'][0].sum() > 0 and it['les'][1].sum() > 0 and 0.5 < it['fov'].mean() < 0.9
    assert len(list(tmp_path.glob('*.npz'))) == 1
    again = cached_item(s, scale=8, cache_dir=tmp_path)
    assert (again['img'] == it['img']).all()

def test_warmup_learns_on_synthetic_lesions(items):
    "A few dozen warm-up iterations take the loss well below that of a constant p = 0.5 (top-k alone sits there from scratch)."
    from fundus_bench.losses_redseg import DeepSupervision
    nt = torch.get_num_threads(); torch.set_num_threads(1)   # several threads on a busy machine are far slower
    try:
        torch.manual_seed(0)
        n = 40
        dls = lesion_dls(items[:3], items[3:], patch=64, bs=4, n_train=4*n, n_valid=4, p_pos=0.8, seed=1, device='cpu')
        learn = redseg_learner(dls, max1=n, max2=0, model_kw=dict(width=1/8), l1=TopKBCE(warmup=n), metrics=[], verbose=False)
        with learn.no_bar(), learn.no_logging(): learn.fit_two_stage(3e-3)
        cb = learn.two_stage_switcher
        assert len(cb.log) == n and all(o['lam'] is None for o in cb.log)    # balanced cross-entropy throughout
        x,y = dls.train.one_batch()
        lf,model = DeepSupervision(TopKBCE(warmup=1)),learn.model.train()
        with torch.no_grad():
            out = model(x)
            const = lf({k: ([torch.zeros_like(o) for o in v] if isinstance(v, list) else torch.zeros_like(v)) for k,v in out.items()}, y)
            got = lf(out, y)
        assert got < 0.8*const, (float(got), float(const))
    finally: torch.set_num_threads(nt)
