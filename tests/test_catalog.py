"The dataset catalog on the real data (counts) and on a tree of deliberately broken files (validate names each one)."
import warnings
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from fundus_bench.core import BadFileError
from fundus_bench.data.catalog import find_datasets, get_dataset, validate, DatasetRow

EXPECTED = {('drishti-gs', 'train'): 50, ('refuge', 'train0'): 321, ('drishti-gs1', 'Training'): 50,
            ('idrid-seg', 'a. Training Set'): 54, ('idrid-loc', 'a. Training Set'): 413}

def _samples(ds):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); return ds.samples()

def test_real_counts(data_root):
    found = {(d.name, d.split): d for d in find_datasets(data_root)}
    assert {k: len(_samples(d)) for k, d in found.items() if k in EXPECTED} == EXPECTED
    for k, d in found.items():
        assert d.problems == [], (k, d.problems[:5])
    refuge = _samples(get_dataset('refuge', data_root))
    assert sum(s.label for s in refuge) == 32 and sum(s.label == 0 for s in refuge) == 289
    assert get_dataset('idrid-seg', data_root, 'train').split == 'a. Training Set'
    assert get_dataset('drishti-gs1', data_root, 'train').split == 'Training'

def test_real_validate(data_root):
    rep = validate(data_root)
    assert rep.ok, str(rep)[-3000:]
    rows = {(r.name, r.split): r for r in rep.datasets}
    for k, n in EXPECTED.items(): assert (rows[k].n_images, rows[k].n_with_gt, rows[k].n_bad) == (n, n, 0)

# ---- a tree of broken inputs ----
def save(p, a):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True); Image.fromarray(a).save(p); return p

def img(p, h=24, w=32): return save(p, np.random.default_rng(0).integers(0, 255, (h, w, 3), dtype=np.uint8))

def tern(h=24, w=32):
    m = np.full((h, w), 255, np.uint8); m[6:18, 8:20] = 128; m[9:15, 11:17] = 0; return m

def binary(r, h=24, w=32):
    m = np.zeros((h, w), np.uint8); m[r[0]:r[1], r[2]:r[3]] = 255; return m

def text(p, s=''):
    p = Path(p); p.parent.mkdir(parents=True, exist_ok=True); p.write_text(s); return p

@pytest.fixture
def broken(tmp_path):
    "A data root with one release of each kind, each holding good files and broken ones; returns {file: substring}."
    d, bad = tmp_path, {}
    c = d/'Drishti-GS/train/disc_small'
    for n in ['g01', 'g02', 'n03', 'n04', 'n05', 'n06', 'g07']: img(c/f'image/{n}.png'); save(c/f'mask/{n}.png', tern())
    raw = (c/'image/g02.png').read_bytes(); (c/'image/g02.png').write_bytes(raw[:len(raw)//2]); bad[c/'image/g02.png'] = ''
    (c/'mask/n03.png').write_bytes(b''); bad[c/'mask/n03.png'] = ''
    m = tern(); m[0:3, 0:3] = 77; save(c/'mask/n04.png', m); bad[c/'mask/n04.png'] = '77'
    save(c/'mask/n05.png', tern(30, 30)); bad[c/'mask/n05.png'] = 'size'
    (c/'mask/n06.png').unlink(); bad[c/'image/n06.png'] = 'without ground truth'
    save(c/'mask/g99.png', tern()); bad[c/'mask/g99.png'] = 'without image'
    text(c/'image/g07.png', 'this is not an image'); bad[c/'image/g07.png'] = ''
    text(c/'image/Thumbs.db', 'x'); text(c/'mask/.DS_Store', 'x'); text(c/'image/desktop.ini', 'x'); text(c/'image/readme.txt')
    # RIM-ONE DL: a cup drawn outside the disc, an image whose name contains '-1-'
    im, rf = d/'RIM-ONE_DL_images/partitioned_randomly', d/'RIM-ONE_DL_reference_segmentations'
    for n, cup in [('r1-1-Im001', (9, 15, 11, 17)), ('r2_Im002', (0, 6, 24, 32))]:
        img(im/f'training_set/glaucoma/{n}.png')
        save(rf/f'glaucoma/{n}-1-Disc-T.png', binary((6, 18, 8, 20))); save(rf/f'glaucoma/{n}-1-Cup-T.png', binary(cup))
    bad[rf/'glaucoma/r2_Im002-1-Cup-T.png'] = ''
    # IDRiD segmentation: a lesion TIFF of the wrong size; a missing lesion file is not a problem
    s = d/'IDRiD/A. Segmentation'
    for n in ['IDRiD_01', 'IDRiD_02']: img(s/f'1. Original Images/a. Training Set/{n}.jpg')
    for fo, k in [('1. Microaneurysms', 'MA'), ('2. Haemorrhages', 'HE')]:
        for n in ['IDRiD_01', 'IDRiD_02']:
            if (n, k) == ('IDRiD_01', 'HE'): continue
            save(s/f'2. All Segmentation Groundtruths/a. Training Set/{fo}/{n}_{k}.tif', np.zeros((24, 32) if n == 'IDRiD_01' else (12, 16), np.uint8))
    bad[s/'2. All Segmentation Groundtruths/a. Training Set/1. Microaneurysms/IDRiD_02_MA.tif'] = 'size'
    bad[s/'2. All Segmentation Groundtruths/a. Training Set/2. Haemorrhages/IDRiD_02_HE.tif'] = 'size'
    # IDRiD localisation: a malformed row, a name escaping the root, a point outside its image
    l = d/'IDRiD/C. Localization'
    for n in ['IDRiD_001', 'IDRiD_002', 'IDRiD_003']: img(l/f'1. Original Images/b. Testing Set/{n}.jpg')
    hdr = 'Image No,X- Coordinate,Y - Coordinate,,,,\n'
    od = text(l/'2. Groundtruths/1. Optic Disc Center Location/b. IDRiD_OD_Center_Testing Set_Markups.csv',
              hdr + 'IDRiD_001,10,12,,,,\nIDRiD_002,1O,12,,,,\n../../../../etc/passwd,1,1,,,\nIDRiD_003,10,12,,,,\n,,,,,,\n,,,,,,\n')
    fov = text(l/'2. Groundtruths/2. Fovea Center Location/IDRiD_Fovea_Center_Testing Set_Markups.csv',
               hdr + 'IDRiD_001,20,12,,,,\nIDRiD_002,20,12,,,,\nIDRiD_003,200,12,,,,\n,,,,,,\n')
    bad[od] = 'line 3'; bad[fov] = 'outside'
    bad[l/'1. Original Images/b. Testing Set/IDRiD_002.jpg'] = 'disc_center missing'   # its OD row was the bad one
    # Drishti-GS1: an unreadable disc-centre file
    g = d/'Drishti-GS1/Drishti-GS1_files/Test'
    img(g/'Images/drishtiGS_001.png')
    save(g/'GT/drishtiGS_001/SoftMap/drishtiGS_001_ODsegSoftmap.png', np.where(tern() < 255, 255, 0).astype(np.uint8))
    save(g/'GT/drishtiGS_001/SoftMap/drishtiGS_001_cupsegSoftmap.png', np.where(tern() == 0, 255, 0).astype(np.uint8))
    text(g/'GT/drishtiGS_001/drishtiGS_001_cdrValues.txt', '0.5 0.6 0.55 0.5')
    bad[text(g/'GT/drishtiGS_001/AvgBoundary/drishtiGS_001_diskCenter.txt', 'row col')] = 'row col'
    # REFUGE official: a spreadsheet that is not one
    r = d/'REFUGE'
    img(r/'REFUGE-Validation400/V0001.jpg'); save(r/'REFUGE-Validation400-GT/Disc_Cup_Masks/V0001.bmp', tern())
    bad[text(r/'REFUGE-Validation400-GT/Fovea_locations.xlsx', 'garbage')] = 'spreadsheet'
    return d, bad

def test_validate_names_every_broken_file(broken):
    d, bad = broken
    rep = validate(d, n_workers=2)
    assert not rep.ok
    got = {}
    for p, m in rep.problems: got.setdefault(Path(p).resolve(), []).append(m)
    for p, sub in bad.items():
        ms = got.get(Path(p).resolve())
        assert ms, f"{p} not reported; report:\n{rep}"
        assert any(sub in m for m in ms), (p, sub, ms)
    extra = set(got) - {Path(p).resolve() for p in bad}
    assert not extra, f"unexpected problems: {[(p, got[p]) for p in extra]}"
    assert {Path(p).name for p in rep.ignored} == {'Thumbs.db', '.DS_Store', 'desktop.ini', 'readme.txt'}
    rows = {(o.name, o.split): o for o in rep.datasets}
    assert rows[('drishti-gs', 'train')] == DatasetRow('drishti-gs', 'train', 'Drishti-GS', 7, 6, 6)
    assert rows[('idrid-loc', 'b. Testing Set')] == DatasetRow('idrid-loc', 'b. Testing Set', 'IDRiD', 3, 3, 2)
    assert rows[('idrid-seg', 'a. Training Set')] == DatasetRow('idrid-seg', 'a. Training Set', 'IDRiD', 2, 2, 1)
    for k in [('rim-one-dl', 'partitioned_randomly/training_set'), ('idrid-seg', 'a. Training Set'),
              ('drishti-gs1', 'Test'), ('refuge-official', 'REFUGE-Validation400')]: assert k in rows
    s = str(rep)
    assert 'drishti-gs' in s and 'g02.png' in s and 'Thumbs.db' in s

def test_samples_leave_out_orphans_with_a_warning(broken):
    d, _ = broken
    ds = get_dataset('drishti-gs', d)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always'); ss = ds.samples()
    assert any('without ground truth' in str(o.message) for o in w)
    assert 'n06' not in {s.name for s in ss} and len(ss) == 6
    assert [o.name for o in ds.excluded] == ['n06']
    ss = _samples(get_dataset('idrid-seg', d))
    assert {s.name: sorted(s.gt) for s in ss} == {'IDRiD_01': ['MA'], 'IDRiD_02': ['HE', 'MA']}
    assert get_dataset('rim-one-dl', d).samples()[0].name == 'r1-1-Im001'
