"Data-parallel training: two CPU processes (gloo) train a tiny U-Net through the fastai loop and end with identical weights."
import torch
from fundus_bench.bench import train_distributed_demo

def test_two_processes_end_with_identical_weights(tmp_path):
    n, bs = 16, 4
    r = train_distributed_demo(2, out_dir=tmp_path, arch='unet', arch_kw=dict(depth=2, width=4), size=32, bs=bs, n=n, epochs=1, device='cpu')
    r0, r1 = r['ranks']
    assert (r0['rank'], r1['rank']) == (0, 1) and r0['world_size'] == 2
    assert r0['batches'] == r1['batches'] == n//bs//2           # each process trains on its half of every epoch
    assert not set(r0['seen']) & set(r1['seen'])               # the halves are disjoint...
    assert len(set(r0['seen']) | set(r1['seen'])) == n         # ...and together cover the data set
    assert r0['moved'] > 1e-4 and r1['moved'] > 1e-4          # training changed the weights
    assert r['max_weight_diff'] == 0                           # gradients averaged: every rank holds the same model
    sd0, sd1 = (torch.load(tmp_path/f'rank{k}.pth', weights_only=True) for k in (0, 1))
    assert sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in sd0 if 'running' not in k and 'num_batches' not in k)
