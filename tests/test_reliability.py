"""Determinism and interrupted runs, end to end through the `fundus-bench` command on CPU at tiny settings
(16 training crops at 64 px, 8 held out from the training split, 6 epochs):
two runs with one seed give identical metrics; a run killed mid-training (SIGKILL or SIGTERM) and resumed with
`fundus-bench run quickstart --resume RUN_DIR` ends with the metrics of the uninterrupted run."""
import json, os, signal, subprocess, sys, shutil, time
from pathlib import Path
import pytest
from fundus_bench.experiments import list_runs, read_json, pid_alive, _children
from fundus_bench.train.checkpoint import load_checkpoint

EPOCHS = 6
TINY = ['-p', 'epochs', EPOCHS, '-p', 'n_train', 16, '-p', 'valid_split', 'null', '-p', 'size', 64, '-p', 'bs', 8, '-p', 'seed', 7, '-p', 'device', 'cpu']
SAME = ('n_train', 'n_valid', 'epochs', 'dice_disc', 'dice_cup', 'iou_disc', 'iou_cup', 'vcdr_mae', 'history', 'per_image')

def exe(): return shutil.which('fundus-bench') or str(Path(sys.executable).parent/'fundus-bench')
def env(): return os.environ | {'CUDA_VISIBLE_DEVICES': ''}
def fb(*args, timeout=600):
    return subprocess.run([exe(), *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env())

def the_run(runs):
    (rd,) = list((Path(runs)/'quickstart').iterdir())
    return rd

def assert_same(m, ref):
    for k in SAME: assert m[k] == ref[k], f"{k}: {str(m[k])[:300]} != {str(ref[k])[:300]}"

@pytest.fixture(scope='module')
def reference(tmp_path_factory):
    "The metrics of an uninterrupted tiny quickstart."
    runs = tmp_path_factory.mktemp('reference')
    r = fb('quickstart', *TINY, '--runs-dir', runs, '--quiet')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rd = the_run(runs)
    assert load_checkpoint(rd/'checkpoint.pth')['epoch'] == EPOCHS
    return json.loads((rd/'metrics.json').read_text())

def test_same_seed_same_metrics(tmp_path, reference):
    "A second run with the same seed reproduces every number (per-epoch losses and per-image scores included)."
    r = fb('quickstart', *TINY, '--runs-dir', tmp_path, '--quiet')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = json.loads((the_run(tmp_path)/'metrics.json').read_text())
    assert_same(m, reference)
    assert len(m['history']) == EPOCHS and m['history'][0] != m['history'][-1]

@pytest.mark.parametrize('sig', [signal.SIGKILL, signal.SIGTERM], ids=['SIGKILL', 'SIGTERM'])
def test_killed_run_resumes_to_same_metrics(tmp_path, reference, sig):
    log = open(tmp_path/'log.txt', 'w')
    p = subprocess.Popen([exe(), 'quickstart', *map(str, TINY), '--runs-dir', str(tmp_path/'runs'), '--quiet'],
                         stdout=log, stderr=subprocess.STDOUT, env=env())
    try:   # wait until two epochs are checkpointed, then kill it while it trains the next ones
        t0, ep = time.time(), 0
        while p.poll() is None and time.time() - t0 < 300:
            ck = list((tmp_path/'runs').glob('quickstart/*/checkpoint.pth'))
            if ck and (ep := load_checkpoint(ck[0])['epoch']) >= 2: break
            time.sleep(0.05)
        assert p.poll() is None, f'the run ended before it could be interrupted: {(tmp_path/"log.txt").read_text()[-2000:]}'
        kernels = _children(p.pid)
        assert kernels, 'no kernel process found'
        p.send_signal(sig); rc = p.wait(120)
    finally:
        if p.poll() is None: p.kill(); p.wait()
        log.close()
    t = time.time()   # the kernel goes with its parent (the SIGTERM handler, or the checkpoint callback's parent check)
    while any(pid_alive(k) for k in kernels) and time.time() - t < 30: time.sleep(0.2)
    assert not any(pid_alive(k) for k in kernels), 'orphan kernel left running'

    rd = the_run(tmp_path/'runs')
    ck = load_checkpoint(rd/'checkpoint.pth')
    assert 2 <= ck['epoch'] < EPOCHS, ck['epoch']          # interrupted mid-training, with a usable checkpoint
    assert ck['epoch'] <= ep + 1, (ep, ck['epoch'])        # an orphaned kernel stops at its next batch, not epochs later
    assert not (rd/'metrics.json').exists()
    on_disk = read_json(rd/'run.json')
    if sig == signal.SIGTERM: assert rc == 130 and on_disk['status'] == 'interrupted' and 'SIGTERM' in on_disk['error']
    else: assert rc == -signal.SIGKILL and on_disk['status'] == 'running'   # nothing could be written...
    (entry,) = list_runs(tmp_path/'runs')
    assert entry['status'] == 'interrupted'                  # ...but the registry reports it interrupted

    r = fb('run', 'quickstart', '--resume', rd, '--quiet')
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    m = json.loads((rd/'metrics.json').read_text())
    assert_same(m, reference)
    info = read_json(rd/'run.json')
    assert info['status'] == 'done' and len(info['attempts']) == 1
    assert read_json(rd/'params.json')['epochs'] == EPOCHS
    assert 'resuming from' in (rd/'quickstart.ipynb').read_text()
    assert (rd/'quickstart.attempt1.ipynb').exists()

def test_resume_refuses_finished_and_foreign_runs(tmp_path):
    "Resuming a finished run, or naming the wrong experiment, is a clear error (exit code 2)."
    rd = tmp_path/'quickstart'/'x'; rd.mkdir(parents=True)
    (rd/'run.json').write_text(json.dumps({'experiment': 'quickstart', 'status': 'done'}))
    (rd/'params.json').write_text('{}')
    r = fb('run', 'quickstart', '--resume', rd)
    assert r.returncode == 2 and 'already finished' in r.stderr
    r = fb('run', 'other', '--resume', rd)
    assert r.returncode == 2 and "a run of 'quickstart'" in r.stderr
