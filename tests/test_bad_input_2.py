"Bad input, second sweep: wrong ground truth that used to pass, operating-system errors, unchecked parameters, models used for the wrong job, and files a clinic's export or a colleague could hand over."
import errno, json, os, shutil, tempfile
from pathlib import Path
import numpy as np, pytest, torch
from PIL import Image
from fundus_bench.cli import main
from fundus_bench.core import BadFileError, BadSamplesError, FundusBenchError, Sample, embedded_data
from fundus_bench.data.catalog import get_dataset
from fundus_bench.data.validate import validate
from fundus_bench.data.io import load_discup, read_image, read_lesion
from fundus_bench.models.unet import GeneralizedUNet
from fundus_bench.train.core import save_model, load_model

SZ = 64
YY, XX = np.mgrid[:SZ, :SZ]; R = np.hypot(YY - SZ/2, XX - SZ/2)

def ternary(disc=18, cup=9):
    "A 0/128/255 map: cup 0 inside rim 128 on background 255."
    m = np.full((SZ, SZ), 255, np.uint8); m[R < disc] = 128; m[R < cup] = 0; return m

def fundus(): return np.dstack([np.full((SZ, SZ), 150, np.uint8) + (R < 18).astype(np.uint8)*80, np.full((SZ, SZ), 60, np.uint8), np.full((SZ, SZ), 30, np.uint8)])

def only_line(err:str, *parts):
    "The command's error is one line holding `parts`, with no traceback."
    assert 'Traceback' not in err, err
    lines = [l for l in err.splitlines() if l.startswith('fundus-bench: error:')]
    assert len(lines) == 1, err
    for s in parts: assert s in lines[0], (s, lines[0])
    return lines[0]

# ---------------------------------------------------------------- 1. wrong ground truth that passed validate

BAD_MASKS = {   # file -> (array, what validate must say)
    'n_rgba': (np.dstack([np.where(ternary() == 255, 0, ternary())]*3 + [np.where(ternary() == 255, 0, 255)]).astype(np.uint8), 'transparent pixels'),
    'n_inverted': (np.choose(ternary()//127, [255, 128, 0]).astype(np.uint8), 'the disc covers'),   # 0 background, 128 rim, 255 cup
    'n_two_blobs': (np.where((YY < 12) & (XX < 12), 128, ternary()).astype(np.uint8), 'the disc is 2 separate pieces'),
    'n_holed': (np.where((R > 13) & (R < 15), 255, ternary()).astype(np.uint8), 'the disc has holes'),
    'n_all_disc': (np.where(ternary() == 255, 128, ternary()).astype(np.uint8), 'the disc touches all four borders'),
}

@pytest.fixture
def bad_crops(tmp_path):
    "A crop set `Bad/train/disc_small/{image,mask}`: one good pair and one of each bad mask."
    b = tmp_path/'Bad'/'train'/'disc_small'
    (b/'image').mkdir(parents=True); (b/'mask').mkdir()
    for n, (m, _) in {'n_good': (ternary(), ''), **BAD_MASKS}.items():
        Image.fromarray(fundus()).save(b/'image'/f'{n}.png'); Image.fromarray(m).save(b/'mask'/f'{n}.png')
    return tmp_path

def test_validate_reports_each_implausible_mask(bad_crops):
    rep = validate(bad_crops, n_workers=1)
    probs = {p.stem: m for p, m in rep.problems}
    assert set(probs) == set(BAD_MASKS), rep
    for n, (_, why) in BAD_MASKS.items(): assert why in probs[n], (n, probs[n])
    assert rep.datasets[0].n_bad == len(BAD_MASKS)

def test_training_refuses_implausible_masks(bad_crops):
    from fundus_bench.data.loaders import seg_dls
    ss = get_dataset('Bad', bad_crops, 'train').samples()
    with pytest.raises(BadSamplesError) as e: seg_dls(ss[:4], ss[4:], size=32, bs=2, device='cpu', check=True)
    assert sum(f'{n}.png' in str(e.value) for n in BAD_MASKS) == len(BAD_MASKS)

def _pair(tmp_path, disc, cup, enc='binary'):
    img = tmp_path/'img.png'; Image.fromarray(fundus()).save(img)
    Image.fromarray(disc).save(tmp_path/'d.png'); Image.fromarray(cup).save(tmp_path/'c.png')
    return Sample(img, gt={'disc': tmp_path/'d.png', 'cup': tmp_path/'c.png'}, encoding=enc)

def test_binary_pair_inverted_or_cup_copied(tmp_path):
    d, c = (R < 18).astype(np.uint8)*255, (R < 9).astype(np.uint8)*255
    assert load_discup(_pair(tmp_path, d, c)).any()
    inv, none = ((R >= 14)*255).astype(np.uint8), np.zeros_like(d)          # disc map inverted, no cup marked
    with pytest.raises(BadFileError, match='d.png: implausible disc/cup ground truth: the disc covers 85% of the image'): load_discup(_pair(tmp_path, inv, none))
    with pytest.raises(BadFileError, match='c.png: implausible disc/cup ground truth: the cup fills 100% of the disc'): load_discup(_pair(tmp_path, d, d))

def test_softmap_inverted(tmp_path):
    inv = np.where(R >= 14, 255, np.where(R >= 12, 128, 0)).astype(np.uint8)   # 255 = all four experts, 128 = two
    with pytest.raises(BadFileError, match='d.png: implausible disc/cup ground truth: the disc covers'): load_discup(_pair(tmp_path, inv, np.zeros_like(inv), 'softmap'))

def test_palette_tiff_lesion_inverted(tmp_path):
    les = np.zeros((SZ, SZ), np.uint8); les[5:8, 5:8] = 1
    pal = Image.fromarray(1 - les, 'P'); pal.putpalette([0, 0, 0, 255, 0, 0]); pal.save(tmp_path/'IDRiD_01_MA.tif', compression='tiff_adobe_deflate')
    with pytest.raises(BadFileError, match='IDRiD_01_MA.tif: implausible lesion map: the lesion covers 100% of the image'): read_lesion(tmp_path/'IDRiD_01_MA.tif', (SZ, SZ))

def test_bmp_with_transparent_palette(tmp_path):
    "A palette map whose background index is transparent (PNG `tRNS`) is refused like an RGBA one."
    im = Image.fromarray(np.where(ternary() == 255, 2, np.where(ternary() == 128, 1, 0)).astype(np.uint8), 'P')
    im.putpalette([0, 0, 0, 128, 128, 128, 255, 255, 255]); im.save(tmp_path/'m.png', transparency=2)
    s = Sample(tmp_path/'img.png', gt={'discup': tmp_path/'m.png'}, encoding='ternary'); Image.fromarray(fundus()).save(s.image)
    with pytest.raises(BadFileError, match='m.png: transparent pixels'): load_discup(s)

# ---------------------------------------------------------------- 2. operating-system errors

@pytest.fixture(scope='module')
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp('models')
    save_model(GeneralizedUNet(depth=2, width=4), d/'seg', 'unet', dict(depth=2, width=4), size=64, dataset='synthetic')
    save_model(GeneralizedUNet(n_out=1, depth=2, width=4), d/'loc', 'unet', dict(n_out=1, depth=2, width=4), size=64, channels=('disc',), role='locator')
    return d/'seg', d/'loc'

@pytest.fixture
def images(tmp_path):
    d = tmp_path/'in'; d.mkdir()
    for i in range(2): Image.fromarray(fundus()).save(d/f'n{i}.png')
    return d

def _deny(monkeypatch, where:Path):
    "Make creating files in `where` fail as a folder without write permission does (the tests may run as root)."
    real = tempfile.TemporaryFile
    def fake(*a, dir=None, **kw):
        if dir is not None and Path(dir).resolve() == where.resolve(): raise PermissionError(errno.EACCES, 'Permission denied', str(dir))
        return real(*a, dir=dir, **kw)
    monkeypatch.setattr(tempfile, 'TemporaryFile', fake)

def test_predict_out_below_a_file(models, images, tmp_path, capsys):
    (tmp_path/'f').write_text('x')
    assert main(['predict', str(images), '--model', str(models[0]), '--out', str(tmp_path/'f'/'sub'), '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'f/sub', 'is a file, not a folder', '--out')

def test_predict_out_not_writable(models, images, tmp_path, capsys, monkeypatch):
    (tmp_path/'ro').mkdir(); _deny(monkeypatch, tmp_path/'ro')
    assert main(['predict', str(images), '--model', str(models[0]), '--out', str(tmp_path/'ro'), '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'ro', 'Permission denied')
    assert not list((tmp_path/'ro').iterdir())

def test_evaluate_read_only_model_folder(models, tmp_path, capsys, monkeypatch):
    m = tmp_path/'shared_model'; shutil.copytree(models[0], m)
    real = tempfile.TemporaryFile
    def fake(*a, dir=None, **kw):
        if dir is not None and m.resolve() in Path(dir).resolve().parents: raise PermissionError(errno.EACCES, 'Permission denied', str(dir))
        return real(*a, dir=dir, **kw)
    monkeypatch.setattr(tempfile, 'TemporaryFile', fake)
    assert main(['evaluate', '--model', str(m), '--data', str(embedded_data()), '--dataset', 'synthetic', '--split', 'test',
                 '--domain', 'A', '--names', 'g_A_test_0005,g_A_test_0011', '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'Permission denied', 'give --out')

def test_run_runs_dir_is_a_file(tmp_path, capsys):
    (tmp_path/'runs').write_text('x')
    assert main(['run', 'quickstart', '--runs-dir', str(tmp_path/'runs')]) == 2
    only_line(capsys.readouterr().err, 'runs', 'not a folder', '--runs-dir')

def test_full_disk_one_line_nothing_half_written(models, images, tmp_path, capsys, monkeypatch):
    import fundus_bench.core as core
    def full(fd): raise OSError(errno.ENOSPC, 'No space left on device')
    monkeypatch.setattr(core.os, 'fsync', full)
    out = tmp_path/'out'
    assert main(['predict', str(images), '--model', str(models[0]), '--out', str(out), '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'No space left on device', 'the disk is full')
    assert not [f for f in out.rglob('*') if f.is_file()]          # no half-written file, no temporary left

# ---------------------------------------------------------------- 3. parameters that were never checked

TOY = ("epochs = None   # None: about `steps` steps\nsteps = 180\nsize = 128\nlr = 3e-3\n"
       "n_train = None  # cap (None: all)\nout_dir = 'x'")

@pytest.fixture
def toy(tmp_path, monkeypatch):
    from fundus_bench.batch import tiny_experiment, OK_BODY
    ex = tmp_path/'exps'; tiny_experiment(ex/'00_toy.ipynb', OK_BODY, TOY)
    monkeypatch.setenv('FUNDUS_BENCH_EXPERIMENTS', str(ex))
    return tmp_path

@pytest.mark.parametrize('k,v,why', [('epochs', 'abc', "epochs: expected a whole number, got 'abc'"),
                                     ('size', '-5', 'size: -5 out of range'),
                                     ('lr', 'nan', "lr: expected a number, got 'nan'"),
                                     ('lr', '.nan', 'lr: expected a finite number'),
                                     ('epoch', '1', 'epoch: unknown parameter; did you mean epochs?'),
                                     ('n_train', '0', 'n_train: 0 out of range')])
def test_bad_parameter_refused_before_the_kernel(toy, capsys, k, v, why):
    assert main(['run', 'toy', '-p', k, v, '--runs-dir', str(toy/'runs')]) == 2
    only_line(capsys.readouterr().err, why)
    assert not (toy/'runs').exists() or not list((toy/'runs').rglob('run.json'))    # no failed run folder left

def test_real_experiments_declare_their_parameters():
    from fundus_bench.experiments import check_params, find_experiment
    nb = find_experiment('quickstart')
    with pytest.raises(FundusBenchError, match='epoch: unknown parameter; did you mean epochs'): check_params(nb, {'epoch': 1})
    with pytest.raises(FundusBenchError, match='n_train: 0 out of range'): check_params(nb, {'n_train': 0})
    assert check_params(nb, {'epochs': 2, 'size': 64, 'lr': 1e-3, 'n_train': 4})[0]['n_train'] == 4

def test_run_all_unknown_shared_parameter(toy, capsys):
    assert main(['run-all', '-p', 'epoch', '1', '--runs-dir', str(toy/'runs'), '--out', str(toy/'r.html')]) == 2
    only_line(capsys.readouterr().err, 'epoch: no experiment takes it; did you mean epochs?')

def test_model_json_thr_checked(models, images, tmp_path, capsys):
    m = tmp_path/'m'; shutil.copytree(models[0], m)
    (m/'model.json').write_text(json.dumps(json.loads((m/'model.json').read_text()) | {'thr': 2}))
    assert main(['predict', str(images), '--model', str(m), '--out', str(tmp_path/'o'), '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'model.json', "'thr' must be a number between 0 and 1, found 2")

# ---------------------------------------------------------------- 4. models for the wrong job, misleading messages

def test_discup_model_as_locator_refused(models, images, tmp_path, capsys):
    assert main(['predict', str(images), '--model', str(models[0]), '--locator', str(models[0]), '--out', str(tmp_path/'o'), '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'a discup model', 'not a disc locator')

def test_locator_as_model_refused_by_task(models, images, tmp_path, capsys):
    assert main(['predict', str(images), '--model', str(models[1]), '--out', str(tmp_path/'o'), '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'a disc locator', 'give it as --locator')

def test_run_folder_without_model_json(models, tmp_path):
    d = tmp_path/'run'; d.mkdir(); shutil.copy(models[1]/'model.pth', d); (d/'params.json').write_text(json.dumps({'size': 64}))
    with pytest.raises(BadFileError, match="model.json: missing, so the weights were taken for the U-Net that params.json describes"): load_model(d, 'cpu')

def test_pickled_code_message(tmp_path, models):
    class Evil:
        def __reduce__(self): return (os.system, ('echo never',))
    d = tmp_path/'m'; shutil.copytree(models[0], d); torch.save({'x': Evil()}, d/'model.pth')
    with pytest.raises(BadFileError) as e: load_model(d, 'cpu')
    s = str(e.value)
    assert 'holds pickled code' in s and 'refused for safety' in s and 'weights_only' not in s.replace('weights-only', '') and 'False' not in s

def test_interrupt_prints_resume_command(monkeypatch, tmp_path, capsys):
    import fundus_bench.experiments as ex   # `fundus-bench run` goes through `experiments.run_command`
    def stop(*a, **kw):
        e = KeyboardInterrupt(); e.run_dir = tmp_path/'runs'/'quickstart'/'1'; raise e
    monkeypatch.setattr(ex, 'run_experiment', stop)
    assert main(['run', 'quickstart', '--runs-dir', str(tmp_path/'runs')]) == 130
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and f"fundus-bench run quickstart --resume {tmp_path/'runs'/'quickstart'/'1'}" in err

# ---------------------------------------------------------------- 5. the sweep: clinic exports and handed-over files

def test_dicom_and_multipage_tiff_named(tmp_path):
    (tmp_path/'scan.dcm').write_bytes(bytes(128) + b'DICM' + bytes(64))
    with pytest.raises(BadFileError, match='scan.dcm: a DICOM file, not read here'): read_image(tmp_path/'scan.dcm')
    fr = [Image.fromarray(fundus()), Image.fromarray(255 - fundus())]; fr[0].save(tmp_path/'both_eyes.tif', save_all=True, append_images=fr[1:])
    with pytest.raises(BadFileError, match='both_eyes.tif: holds 2 images'): read_image(tmp_path/'both_eyes.tif')

def test_unreadable_by_permission(tmp_path, monkeypatch):
    p = tmp_path/'locked.png'; Image.fromarray(fundus()).save(p)
    def deny(*a, **kw): raise PermissionError(errno.EACCES, 'Permission denied', str(p))
    monkeypatch.setattr(Image, 'open', deny)
    with pytest.raises(BadFileError, match=r'locked.png: cannot be read \(Permission denied\)'): read_image(p)

def test_predict_names_the_files_it_does_not_take(models, images, tmp_path, capsys):
    (images/'scan.dcm').write_bytes(bytes(128) + b'DICM'); (images/'report.pdf').write_bytes(b'%PDF-1.4')
    Image.fromarray(fundus()).save(images/'n9.jp2')
    assert main(['predict', str(images), '--model', str(models[0]), '--out', str(tmp_path/'o'), '--device', 'cpu']) == 0
    err = capsys.readouterr().err
    assert 'scan.dcm (DICOM: export its image as PNG or JPEG)' in err and 'report.pdf (a PDF document)' in err
    assert (tmp_path/'o'/'masks'/'n9.png').is_file()                 # JPEG 2000 taken

def test_weights_handed_over_as_lfs_pointer_or_safetensors(models, tmp_path):
    import safetensors.torch
    d = tmp_path/'m'; shutil.copytree(models[0], d)
    (d/'model.pth').write_text('version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n')
    with pytest.raises(BadFileError, match='model.pth: not a loadable weights-only checkpoint: a Git LFS pointer'): load_model(d, 'cpu')
    sd = torch.load(models[0]/'model.pth', weights_only=True); safetensors.torch.save_file(sd, str(d/'model.safetensors'))
    (d/'model.json').write_text(json.dumps(json.loads((d/'model.json').read_text()) | {'weights': 'model.safetensors'}))
    m, _ = load_model(d, 'cpu')
    assert all(torch.equal(v, sd[k]) for k, v in m.state_dict().items())

def test_report_runs_dir_or_out_below_a_file(tmp_path, capsys):
    (tmp_path/'f').write_text('x')
    assert main(['report', '--runs-dir', str(tmp_path/'f'), '--out', str(tmp_path/'r.html')]) == 2
    only_line(capsys.readouterr().err, 'f: not a folder (--runs-dir)')
    assert not (tmp_path/'r.html').exists()
    assert main(['report', str(tmp_path), '--out', str(tmp_path/'f'/'r.html')]) == 2
    only_line(capsys.readouterr().err, 'a file stands where a folder is needed')

def test_text_file_as_model(images, tmp_path, capsys):
    (tmp_path/'notes.txt').write_text('the model is on the shared drive')
    assert main(['predict', str(images), '--model', str(tmp_path/'notes.txt'), '--out', str(tmp_path/'o'), '--device', 'cpu']) == 2
    only_line(capsys.readouterr().err, 'no model.json', 'give a run folder, its model.json, or a weights file with model.json beside it')

@pytest.mark.parametrize('enc', ['utf-16', 'utf-8-sig', 'binary'])
def test_names_file_from_another_editor(models, tmp_path, capsys, enc):
    "A --names file saved by a Windows editor (UTF-16, or UTF-8 with a byte-order mark) is read; a binary one is named."
    f = tmp_path/'names.txt'
    if enc == 'binary': f.write_bytes(bytes(range(256)))
    else: f.write_text('g_A_test_0005\r\ng_A_test_0011\r\n', encoding=enc)
    rc = main(['evaluate', '--model', str(models[0]), '--data', str(embedded_data()), '--dataset', 'synthetic', '--split', 'test',
               '--names', str(f), '--device', 'cpu', '--out', str(tmp_path/'ev')])
    if enc == 'binary': assert rc == 2; only_line(capsys.readouterr().err, 'names.txt: not a text file of image names')
    else: assert rc == 0 and json.loads((tmp_path/'ev'/'metrics.json').read_text())['n'] == 2

def test_profile_section_with_a_misspelt_experiment(toy, capsys):
    (toy/'exps'/'profile-typo.yaml').write_text('all:\n  steps: 2\ntoyy:\n  size: 64\n')
    assert main(['run-all', '--profile', 'typo', '--runs-dir', str(toy/'runs'), '--out', str(toy/'r.html')]) == 2
    only_line(capsys.readouterr().err, "profile-typo.yaml: section 'toyy' is no experiment's; did you mean toy?")
    assert not (toy/'runs').exists()
