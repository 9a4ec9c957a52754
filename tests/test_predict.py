"`fundus-bench predict` and `evaluate` end to end: outputs, unreadable files, resuming, bounded memory."
import csv, json, subprocess, sys, shutil, textwrap
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from conftest import ROOT
from fundus_bench.cli import main
from fundus_bench.core import embedded_data
from fundus_bench.data.catalog import get_dataset
from fundus_bench.models.unet import GeneralizedUNet
from fundus_bench.train.core import save_model

@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "A tiny random [disc, cup] U-Net and a tiny random locator, saved as run folders."
    d = tmp_path_factory.mktemp('models')
    save_model(GeneralizedUNet(depth=2, width=4), d/'seg', 'unet', dict(depth=2, width=4), size=64, dataset='synthetic')
    save_model(GeneralizedUNet(n_out=1, depth=2, width=4), d/'loc', 'unet', dict(n_out=1, depth=2, width=4), size=64,
               channels=('disc',), role='locator')
    return d/'seg', d/'loc'

@pytest.fixture
def inputs(tmp_path):
    "Three embedded synthetic whole images and one corrupt file."
    d = tmp_path/'in'; d.mkdir()
    for s in get_dataset('synthetic-whole', embedded_data(), 'test').samples()[:3]: shutil.copy(s.image, d/s.image.name)
    (d/'corrupt.png').write_bytes(b'\x89PNG\r\n\x1a\n' + b'\0'*40)
    return d

def fb(*args):
    exe = shutil.which('fundus-bench') or str(Path(sys.executable).parent/'fundus-bench')
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)

def rows(out): return list(csv.DictReader(open(out/'vcdr.csv')))

def test_predict_whole_images(models, inputs, tmp_path):
    seg, loc = models; out = tmp_path/'out'
    r = fb('predict', inputs, '--model', seg, '--locator', loc, '--out', out, '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'unreadable 1' in r.stderr and 'corrupt.png' in r.stderr
    rs = {o['name']: o for o in rows(out)}
    assert len(rs) == 4 and rs['corrupt']['status'] == 'unreadable' and 'corrupt.png' in rs['corrupt']['error']
    for f in sorted(inputs.glob('[gn]*.png')):
        m = np.array(Image.open(out/'masks'/f.name))
        assert m.shape == Image.open(f).size[::-1] and set(np.unique(m)) <= {0, 128, 255}
        assert (out/'overlays'/f.name).is_file() and (out/'records'/f'{f.stem}.json').is_file()
        o = rs[f.stem]; assert o['status'] in ('ok', 'no disc found') and 0 <= float(o['vcdr']) <= 1 and o['crop_x1'] != ''
    assert not list(out.rglob('*.tmp'))

def test_second_run_finishes_only_the_missing(models, inputs, tmp_path):
    seg, loc = models; out = tmp_path/'out'
    args = ['predict', str(inputs), '--model', str(seg), '--locator', str(loc), '--out', str(out), '--device', 'cpu']
    assert main(args) == 0
    first = {f.name: f.stat().st_mtime_ns for f in (out/'masks').iterdir()}
    victim = sorted(first)[0]
    (out/'overlays'/victim).unlink()                                 # an image left incomplete by a killed run
    (out/'masks'/f'.{sorted(first)[1]}.abc.tmp').write_bytes(b'half')  # and a temporary file it left behind
    assert main(args) == 0
    again = {f.name: f.stat().st_mtime_ns for f in (out/'masks').iterdir()}
    assert set(again) == set(first) and again[victim] != first[victim]
    assert all(again[k] == first[k] for k in first if k != victim)
    assert (out/'overlays'/victim).is_file() and not list(out.rglob('*.tmp'))
    assert sum(o['status'] in ('ok', 'no disc found') for o in rows(out)) == 3

def test_evaluate_synthetic_crops(models, tmp_path, capsys):
    seg, _ = models
    assert main(['evaluate', '--model', str(seg), '--data', str(embedded_data()), '--dataset', 'synthetic',
                 '--split', 'test', '--domain', 'A', '--device', 'cpu', '--out', str(tmp_path/'ev')]) == 0
    printed = capsys.readouterr().out
    for k in ('dice_disc', 'dice_cup', 'iou_disc', 'iou_cup', 'vcdr_mae', 'rrp'): assert k in printed
    m = json.loads((tmp_path/'ev/metrics.json').read_text())
    assert m['n'] == 30 and m['split'] == 'test' and 0 <= m['dice_disc'] <= 1
    assert len(list(csv.DictReader(open(tmp_path/'ev/per_image.csv')))) == 30

def test_evaluate_whole_images_through_locator(models, tmp_path):
    seg, loc = models
    assert main(['evaluate', '--model', str(seg), '--locator', str(loc), '--data', str(embedded_data()), '--dataset',
                 'synthetic-whole', '--split', 'test', '--device', 'cpu', '--out', str(tmp_path/'ev')]) == 0
    m = json.loads((tmp_path/'ev/metrics.json').read_text())
    assert m['n'] == 8 and 'centre_dist_mean' in m and m['locator'] == str(loc)

STREAM = textwrap.dedent('''
    import resource, sys, json, torch
    torch.set_num_threads(1)
    from pathlib import Path
    from fundus_bench.tasks.discup import list_inputs, predict_files
    from fundus_bench.infer import load_predictor
    seg, s = load_predictor(sys.argv[1], 'cpu'); loc, ls = load_predictor(sys.argv[2], 'cpu')
    files = list_inputs([sys.argv[3]]); out = Path(sys.argv[4])
    kw = dict(seg_size=s['size'], loc_size=ls['size'], crop=s['crop'], device='cpu', bs=4, overlay_size=256, log=lambda *a: None)
    predict_files(files[:8], seg, out, loc, **kw)                     # warm up: every buffer allocated once
    now = lambda: int(open('/proc/self/statm').read().split()[1])*resource.getpagesize()//1024
    rss0, cur0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, now()
    r = predict_files(files, seg, out, loc, **kw)
    rss1, cur1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, now()
    print(json.dumps(dict(rss0_kb=rss0, rss1_kb=rss1, cur0_kb=cur0, cur1_kb=cur1, predicted=r['predicted'],
                          earlier=r['done_earlier'], seconds=r['seconds'])))
''')

def test_streaming_memory_is_bounded(models, tmp_path):
    "200 images of 512x512 (150 MiB decoded in all): peak memory grows by a small fraction of that."
    import cv2
    seg, loc = models; d = tmp_path/'many'; d.mkdir()
    yy, xx = np.mgrid[:512, :512]; base = np.clip(200 - np.hypot(yy - 256, xx - 256)/2, 0, 255)
    fov = np.hypot(yy - 256, xx - 256) < 240
    for i in range(200):
        im = np.stack([base, base*0.5, base*0.3], -1)*fov[..., None]
        cv2.circle(im, (150 + i, 256), 32, (255, 230, 200), -1)
        cv2.imwrite(str(d/f'im{i:03d}.png'), im[..., ::-1].astype(np.uint8), [cv2.IMWRITE_PNG_COMPRESSION, 1])
    r = subprocess.run([sys.executable, '-c', STREAM, seg, loc, d, tmp_path/'out'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    m = json.loads(r.stdout.strip().splitlines()[-1])
    assert m['predicted'] == 192 and m['earlier'] == 8
    total = 200*512*512*3/2**10                                       # KiB of all decoded images
    grow = m['rss1_kb'] - m['rss0_kb']
    print(f"peak RSS {m['rss0_kb']/1024:.0f} -> {m['rss1_kb']/1024:.0f} MiB, current {m['cur0_kb']/1024:.0f} -> "
          f"{m['cur1_kb']/1024:.0f} MiB over 192 images "
          f"(all decoded: {total/1024:.0f} MiB), {m['seconds']:.1f} s")
    assert grow < 0.15*total and m['cur1_kb'] - m['cur0_kb'] < 0.15*total, (m, total)
    assert len(list((tmp_path/'out'/'masks').iterdir())) == 200

def test_output_names_never_collide(models, tmp_path):
    "a/x.png, b/x.png and c/x_2.png get three different outputs, and a second run finds all three done."
    seg, _ = models; d = tmp_path/'in'; out = tmp_path/'out'
    src = get_dataset('synthetic', embedded_data(), 'test').samples()[:3]
    for s, f in zip(src, ['a/x.png', 'b/x.png', 'c/x_2.png']): (d/f).parent.mkdir(parents=True, exist_ok=True); shutil.copy(s.image, d/f)
    assert main(['predict', str(d), '--model', str(seg), '--out', str(out), '--device', 'cpu']) == 0
    rs = rows(out); assert len({o['name'] for o in rs}) == 3 and len(list((out/'masks').iterdir())) == 3
    assert {o['name']: o['file'] for o in rs}['x_2'].endswith('c/x_2.png')
    r = fb('predict', d, '--model', seg, '--out', out, '--device', 'cpu')
    assert r.returncode == 0 and '3 done earlier, 0 to predict' in r.stderr

def test_other_settings_are_refused(models, inputs, tmp_path):
    "A second run into the same folder with another threshold stops; --redo predicts again with it; --thr 0 is used."
    seg, loc = models; out = tmp_path/'out'
    args = ['predict', inputs, '--model', seg, '--locator', loc, '--out', out, '--device', 'cpu']
    assert fb(*args).returncode == 0
    r = fb(*args, '--thr', '0', '--tta')
    assert r.returncode == 2 and 'other settings' in r.stderr and 'thr' in r.stderr and 'tta' in r.stderr and 'Traceback' not in r.stderr
    assert fb(*args, '--thr', '0', '--redo').returncode == 0
    st = json.loads((out/'settings.json').read_text()); assert st['thr'] == 0 and st['model_sha256'] and st['locator']
    assert all(json.loads(f.read_text())['settings'] for f in (out/'records').iterdir())

def test_file_names_not_utf8(models, inputs, tmp_path):
    "A file name that is not UTF-8 keeps its bytes in the CSV; evaluation output is written whole or not at all."
    import os, argparse, types
    from fundus_bench.tasks.run import write_evaluation
    seg, loc = models; out = tmp_path/'out'
    shutil.copy(next(inputs.glob('[!c]*.png')), os.fsencode(inputs) + b'/caf\xe9.png')
    r = fb('predict', inputs, '--model', seg, '--locator', loc, '--out', out, '--device', 'cpu')
    assert r.returncode == 0, r.stderr[-3000:]
    data = (out/'vcdr.csv').read_bytes(); assert b'caf\xe9' in data and len(data.splitlines()) == 6
    a = argparse.Namespace(out=str(tmp_path/'ev'), model=str(seg), dataset='x')
    ds, rs = types.SimpleNamespace(split='test'), [dict(name='caf\udce9', status='ok', dice_disc=0.5)]
    with pytest.raises(TypeError): write_evaluation(a, ds, dict(n=1, bad=object()), rs, {})
    assert not (tmp_path/'ev/per_image.csv').exists() and not (tmp_path/'ev/metrics.json').exists()
    assert write_evaluation(a, ds, dict(n=1), rs, {}) == 0
    assert b'caf\xe9' in (tmp_path/'ev/per_image.csv').read_bytes() and (tmp_path/'ev/metrics.json').is_file()

def test_each_evaluation_its_own_folder(models, tmp_path):
    "Evaluations with other images or options go to their own folders; the same one again replaces its own."
    seg, _ = models; shutil.rmtree(seg/'evaluate', ignore_errors=True)
    ev = lambda *o: main(['evaluate', '--model', str(seg), '--data', str(embedded_data()), '--dataset', 'synthetic',
                          '--split', 'test', '--domain', 'A', '--device', 'cpu', *o])
    names = ','.join(s.name for s in get_dataset('synthetic', embedded_data(), 'test').samples() if s.domain == 'A')
    assert ev() == 0 and ev('--names', names.split(',')[0]) == 0 and ev() == 0
    ds = sorted((seg/'evaluate').iterdir()); assert len(ds) == 2
    assert sorted(json.loads((d/'metrics.json').read_text())['n'] for d in ds) == [1, 30]
    assert all((d/'settings.json').is_file() for d in ds)
    full = next(d for d in ds if json.loads((d/'metrics.json').read_text())['n'] == 30)
    assert ev('--out', str(full)) == 0 and ev('--thr', '0.3', '--out', str(full)) == 2   # same evaluation again: replaced; another: refused

def test_doubtful_images_get_a_warning(models, tmp_path):
    seg, _ = models; d = tmp_path/'in'; d.mkdir()
    Image.fromarray(np.full((10, 2000, 3), 128, np.uint8)).save(d/'wide.png'); Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(d/'tiny.png')
    Image.fromarray(np.zeros((100, 100, 4), np.uint8)).save(d/'clear.png')
    grey = np.array(Image.open(next(iter(get_dataset('synthetic-whole', embedded_data(), 'test').samples())).image).convert('L'))
    Image.fromarray(grey).save(d/'grey.png')
    r = fb('predict', d, '--model', seg, '--out', tmp_path/'out', '--device', 'cpu')
    assert r.returncode == 0 and 'with warnings 4' in r.stderr
    rs = {o['name']: o for o in rows(tmp_path/'out')}
    assert all(o['status'] == 'warning' for o in rs.values())
    assert 'aspect' in rs['wide']['note'] and 'small' in rs['tiny']['note'] and 'transparent' in rs['clear']['note']
    assert 'greyscale' in rs['grey']['note'] and 'greyscale' not in rs['clear']['note']

def test_option_values_checked(models, tmp_path):
    seg, _ = models; f = tmp_path/'file'; f.write_text('x')
    for o in (['--bs', '0'], ['--bs', '-2'], ['--thr', '2'], ['--crop', '-1']):
        r = fb('predict', f, '--model', seg, *o); assert r.returncode == 2 and o[0] in r.stderr and 'Traceback' not in r.stderr
    r = fb('predict', f, '--model', seg, '--out', f); assert r.returncode == 2 and 'not a folder' in r.stderr
    r = fb('predict', tmp_path, '--model', seg, '--out', tmp_path); assert r.returncode == 2 and 'is the output folder' in r.stderr
