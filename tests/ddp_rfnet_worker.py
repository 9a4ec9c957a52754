"One process of a data-parallel RF-Net fit on synthetic whole images (started by `tests/test_distributed.py` through torchrun); it saves its weights."
import sys, json, torch
from pathlib import Path
from fundus_bench.core import set_seed, embedded_data
from fundus_bench.data.catalog import get_dataset
from fundus_bench.train.rfnet import rfnet_dls, rfnet_learner, fit_rfnet
from fastai.torch_core import rank_distrib
ss = get_dataset('synthetic-whole', embedded_data(), 'train').samples()[:8]
set_seed(0)
dls = rfnet_dls(ss[:4], ss[4:6], size=128, bs=1, device='cpu', seed=0)
tiny = dict(width_mult=0.25, fpn_ch=16, box_ch=64, mask_ch=16, rpn_train=500, proposals=200, mask_pos_max=8)
learn = rfnet_learner(dls, **tiny)
with learn.no_bar(), learn.no_logging(): fit_rfnet(learn, 2)
out = Path(sys.argv[1]); torch.save(learn.model.state_dict(), out/f'rank{rank_distrib()}.pth')
