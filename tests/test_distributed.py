"Data-parallel training: two CPU processes (gloo, through fastai's Accelerate path) train a small U-Net with the experiments' own `fit_seg` and end with identical weights."
import os, warnings, torch, pytest
from pathlib import Path
from fundus_bench.bench.scaling import launched_training

def test_two_processes_end_with_identical_weights(tmp_path):
    n, bs = 8, 2
    r0, r1 = launched_training(2, tmp_path, n=n, size=32, bs=bs, epochs=2, arch_kw=dict(depth=2, width=4))
    assert (r0['rank'], r1['rank']) == (0, 1) and r0['world_size'] == r1['world_size'] == 2
    assert r0['batches'] == r1['batches'] == 2*n//bs//2         # each process trains on its half of every epoch
    assert r0['moved'] > 1e-4 and r1['moved'] > 1e-4             # training changed the weights
    sd0, sd1 = (torch.load(tmp_path/f'rank{k}.pth', weights_only=True) for k in (0, 1))
    assert not any(k.startswith('module.') for k in sd0)          # the Learner gives its own model back after the fit
    ps = [k for k in sd0 if 'running' not in k and 'num_batches' not in k]
    assert ps and sd0.keys() == sd1.keys() and all(torch.equal(sd0[k], sd1[k]) for k in ps)   # gradients averaged at every step

def test_old_names_still_import_with_a_warning():
    with pytest.warns(DeprecationWarning, match='fastai.distributed.DistributedDL'):
        from fundus_bench.bench import ShardDL
    from fastai.distributed import DistributedDL
    assert ShardDL is DistributedDL

def test_quickstart_in_two_processes_writes_one_run(tmp_path):
    "`--processes 2`: the experiment notebook trains data-parallel; rank 0 alone writes the run folder, the other rank a throwaway one."
    import subprocess, sys, json, os
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, '-m', 'fundus_bench.cli', 'quickstart', '-p', 'epochs', '2', '-p', 'n_train', '8', '-p', 'size', '32',
                        '-p', 'depth', '2', '-p', 'width', '4', '--runs-dir', str(tmp_path), '--quiet', '--processes', '2'],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    runs = list((tmp_path/'quickstart').iterdir())
    assert len(runs) == 1, runs
    rd = runs[0]
    assert json.loads((rd/'run.json').read_text())['status'] == 'done'
    assert {'model.pth', 'model.json', 'metrics.json', 'checkpoint.pth'} <= {f.name for f in rd.iterdir()}
    ck = torch.load(rd/'checkpoint.pth', weights_only=True)
    assert ck['epoch'] == 2 and not any(k.startswith('module.') for k in ck['model'])   # the plain model's keys, resumable in one process
    assert r.stdout.count('run folder') == 1

def test_adversarial_schedule_in_two_processes(tmp_path):
    "Seed 001's schedule (stage 1, discriminator warm-up, stage 2) data-parallel: both ranks take the same steps in the same order and end with the same segmenter and discriminator."
    import json, os
    from pathlib import Path
    from fundus_bench.train.distributed import run_launched
    r = run_launched([str(Path(__file__).with_name('ddp_adapt_worker.py')), str(tmp_path)], 2, threads=1, gpu=False,
                     capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    l0, l1 = (json.loads((tmp_path/f'rank{k}.json').read_text()) for k in (0, 1))
    assert l0['stages'] == l1['stages'] == [1, 'd-warmup', 2]
    assert l0['steps'] == l1['steps'] and len(l0['steps']) == 3*8//2//2     # each rank: half of each epoch's 4 batches of 2
    assert [s[0] for s in l0['steps']] == ['seg']*2 + ['warmup']*2 + ['adapt']*2
    w0, w1 = (torch.load(tmp_path/f'rank{k}.pth', weights_only=True) for k in (0, 1))
    for part in ('seg', 'disc'):
        ps = [k for k in w0[part] if 'running' not in k and 'num_batches' not in k]
        assert ps and all(torch.equal(w0[part][k], w1[part][k]) for k in ps), part


def _same_weights(tmp_path, key=None):
    w0, w1 = (torch.load(tmp_path/f'rank{k}.pth', weights_only=True) for k in (0, 1))
    if key: w0, w1 = w0[key], w1[key]
    ps = [k for k in w0 if 'running' not in k and 'num_batches' not in k]
    return bool(ps) and all(torch.equal(w0[k], w1[k]) for k in ps)

@pytest.mark.skipif(os.environ.get('FUNDUS_BENCH_SLOW') != '1', reason='slow (about 50 s on 2 cores); FUNDUS_BENCH_SLOW=1 runs it')
def test_rfnet_in_two_processes(tmp_path):
    "The RF-Net detector (region proposals, box and mask heads) trains data-parallel to the same weights on both ranks."
    from fundus_bench.train.distributed import run_launched
    r = run_launched([str(Path(__file__).with_name('ddp_rfnet_worker.py')), str(tmp_path)], 2, threads=1, gpu=False,
                     capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    assert _same_weights(tmp_path)

@pytest.mark.skipif(torch.cuda.device_count() < 2, reason='needs 2 GPUs (cuda)')
def test_two_gpus_end_with_identical_weights(tmp_path):
    "On a machine with 2 GPUs: one process per GPU (accelerate launch, NCCL, SyncBatchNorm) ends with the same weights."
    r0, r1 = launched_training(2, tmp_path, gpu=True, n=16, size=64, bs=4, epochs=2)
    assert r0['batches'] == r1['batches'] == 2*16//4//2 and _same_weights(tmp_path)
