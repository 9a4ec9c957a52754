"One process of a data-parallel adversarial adaptation run (started by `tests/test_distributed.py` through torchrun): it records the order of its steps and saves its weights."
import json, sys, torch
from pathlib import Path
from fastai.callback.core import Callback
from fundus_bench.core import embedded_data, set_seed
from fundus_bench.data.domains import domain_dls
from fundus_bench.train.seg import train_test_samples
from fundus_bench.train.adversarial import adapt_learner, fit_adapt
from fastai.torch_core import rank_distrib

class StepLog(Callback):
    "What the schedule did at each training batch: (stage, epoch, batch, segmenter stepped, discriminator trained)."
    order = 90
    def __init__(self): self.log = []
    def after_batch(self):
        if not self.training: return
        a = self.learn.adapt_trainer
        self.log.append(['warmup' if a.warmup else 'adapt' if a.adapt else 'seg', self.epoch, self.iter, not a.warmup, a.trains_disc and a.xt is not None])

out = Path(sys.argv[1]); root = embedded_data()
src, src_va = train_test_samples('synthetic:A', root)
tgt, _ = train_test_samples('synthetic:B', root)
set_seed(0)
dls = domain_dls(src[:8], tgt[:8], src_va[:2], size=32, bs=2, device='cpu', seed=0)
log = StepLog()
learn = adapt_learner(dls, arch_kw={'width_mult': 0.35, 'aspp_ch': 32, 'low_ch': 16}, d_width=8, lambda_adv=0.1, cbs=[log])
with learn.no_bar(), learn.no_logging(): hist = fit_adapt(learn, 1, 1, d_warmup=1)
r = rank_distrib()
torch.save({'seg': learn.model.state_dict(), 'disc': learn.disc.state_dict()}, out/f'rank{r}.pth')
(out/f'rank{r}.json').write_text(json.dumps({'steps': log.log, 'stages': [h['stage'] for h in hist]}))
