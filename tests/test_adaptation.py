"Two-stage output-space adaptation on tiny synthetic domains: losses and discriminator accuracy are logged, target masks are never read."
import math
import numpy as np
from fundus_bench.core import embedded_data, set_seed
from fundus_bench.data import loaders
from fundus_bench.data.domains import domain_dls
from fundus_bench.train.seg import train_test_samples
from fundus_bench.train.adversarial import adapt_learner, fit_adapt, ADAPT_KEYS


def test_two_stage_adaptation_logs_parts(monkeypatch):
    root = embedded_data()
    src, src_va = train_test_samples('synthetic:A', root)
    tgt, _ = train_test_samples('synthetic:B', root)
    src, src_va, tgt = src[:4], src_va[:2], tgt[:4]
    calls, orig = [], loaders.load_discup
    def spy(s, shape=None): calls.append(s.image); return orig(s, shape=shape)
    monkeypatch.setattr(loaders, 'load_discup', spy)
    set_seed(0)
    dls = domain_dls(src, tgt, src_va, size=32, bs=4, device='cpu', seed=0)
    learn = adapt_learner(dls, arch_kw={'width_mult': 0.35, 'aspp_ch': 32, 'low_ch': 16}, d_width=8, lambda_adv=0.1)
    with learn.no_bar(), learn.no_logging(): hist = fit_adapt(learn, 1, 1)
    assert [h['stage'] for h in hist] == [1, 2]
    assert math.isnan(hist[0]['l_adv']) and math.isnan(hist[0]['d_acc_src'])
    for k in ADAPT_KEYS: assert np.isfinite(hist[1][k]), k
    assert 0 <= hist[1]['d_acc_src'] <= 1 and 0 <= hist[1]['d_acc_tgt'] <= 1
    assert {'dice_disc', 'dice_cup', 'valid_loss'} <= set(hist[1])
    assert list(ADAPT_KEYS) == learn.recorder.metric_names[-len(ADAPT_KEYS) - 1:-1]
    tgt_imgs = {s.image for s in tgt}
    assert calls and not tgt_imgs & set(calls), "a target mask was read"
