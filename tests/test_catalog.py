"The dataset catalog on the real data (counts) and on a tree of deliberately broken files (validate names each one)."
import warnings
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from fundus_bench.core import BadFileError
from fundus_bench.data.catalog import find_datasets, get_dataset
from fundus_bench.data.files import read_points_csv
from fundus_bench.data.validate import validate, DatasetRow
from fundus_bench.data.io import load_discup

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
    assert rows[('idrid-loc', 'b. Testing Set')] == DatasetRow('idrid-loc', 'b. Testing Set', 'IDRiD', 3, 2, 2)   # IDRiD_002 lacks its disc centre
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

# ---- one layout at a time ----
def crops(d, names=('g01', 'n02'), mask=True):
    "A Drishti-GS crop set under `d` with good 0/128/255 masks."
    c = d/'Drishti-GS/train/disc_small'
    for n in names:
        img(c/f'image/{n}.png')
        if mask: save(c/f'mask/{n}.png', tern())
    return c

def msgs(rep): return [f"{Path(p).name}: {m}" for p, m in rep.problems]

LOC_HDR = 'Image No,X- Coordinate,Y - Coordinate' + ','*12

@pytest.mark.parametrize('body', [
    LOC_HDR + '\nIDRiD_001,714,451' + ','*12 + '\n' + (','*14 + '\n')*4,          # the release: empty columns, blank rows
    'Image No,Y - Coordinate,X- Coordinate\nIDRiD_001,451,714\n',                  # Y before X
    ',Image No,X - Coordinate,Y- Coordinate\n0,IDRiD_001,714,451\n',               # a spreadsheet's index column first
    'image,x,y\nIDRiD_001,714,451\n',
    'IDRiD_001,714,451\n'])                                                       # no header: name, x, y by position
def test_point_csv_columns_by_header(tmp_path, body):
    p = text(tmp_path/'od.csv', body)
    assert read_points_csv(p) == ({'IDRiD_001': {'x': 714., 'y': 451.}}, [])

def test_point_csv_missing_column_named(tmp_path):
    p = text(tmp_path/'od.csv', 'Image No,X- Coordinate,Depth\nIDRiD_001,714,451\n')
    pts, probs = read_points_csv(p)
    assert pts == {} and len(probs) == 1 and probs[0][0] == p and 'no y column' in probs[0][1], probs

def test_idrid_loc_swapped_header_validates(tmp_path):
    l = tmp_path/'IDRiD/C. Localization'
    img(l/'1. Original Images/a. Training Set/IDRiD_001.jpg', h=24, w=32)
    for f in ['1. Optic Disc Center Location/a. IDRiD_OD_Center_Training Set_Markups.csv',
              '2. Fovea Center Location/IDRiD_Fovea_Center_Training Set_Markups.csv']:
        text(l/'2. Groundtruths'/f, 'Image No,Y - Coordinate,X- Coordinate,,,\nIDRiD_001,20,5,,,\n')   # x=5, y=20: inside 32x24
    ss = _samples(get_dataset('idrid-loc', tmp_path))
    assert ss[0].points == {'disc_center': (5., 20.), 'fovea': (5., 20.)}
    assert validate(tmp_path).ok

def test_validate_fails_when_nothing_usable(tmp_path):
    rep = validate(tmp_path)                                             # an empty root
    assert not rep.ok and 'no dataset found under' in rep.problems[0][1] and 'disc_small' in rep.problems[0][1], rep
    crops(tmp_path)
    rep = validate(tmp_path/'Drishti-GS/train')                          # one level too deep
    assert not rep.ok and any('no dataset found' in m for m in msgs(rep)), rep
    assert validate(tmp_path).ok
    import shutil; shutil.rmtree(tmp_path/'Drishti-GS/train/disc_small/mask')
    rep = validate(tmp_path)                                             # images, no mask folder at all
    assert not rep.ok and any('has ground truth' in m for m in msgs(rep)), rep

def test_validate_fails_on_empty_split(tmp_path):
    for k in ['image', 'mask']: (tmp_path/f'Drishti-GS/train/disc_small/{k}').mkdir(parents=True)
    rep = validate(tmp_path)
    assert not rep.ok and any('no images' in m for m in msgs(rep)), rep
    assert rep.datasets == [DatasetRow('drishti-gs', 'train', 'Drishti-GS', 0, 0, 0)]

def test_binary_mask_in_ternary_layout_refused(tmp_path):
    c = crops(tmp_path)
    save(c/'mask/g01.png', np.where(tern() < 255, 255, 0).astype(np.uint8))   # a 0/255 disc mask
    with pytest.raises(BadFileError, match='no rim'): load_discup(_samples(get_dataset('drishti-gs', tmp_path))[0])
    rep = validate(tmp_path)
    assert [(Path(p).name, 'no rim (128)' in m) for p, m in rep.problems] == [('g01.png', True)], rep
    assert rep.datasets[0] == DatasetRow('drishti-gs', 'train', 'Drishti-GS', 2, 2, 1)

def test_symlink_loop_skipped_and_reported(tmp_path):
    r = tmp_path/'REFUGE'
    for c, n in [('Glaucoma', 'g0001'), ('Non-Glaucoma', 'n0001')]:
        img(r/f'Training400/{c}/{n}.jpg'); save(r/f'Annotation-Training400/Disc_Cup_Masks/{c}/{n}.bmp', tern())
    (r/'Training400/Glaucoma/loop').symlink_to('..', target_is_directory=True)
    (r/'Annotation-Training400/Disc_Cup_Masks/Glaucoma/self').symlink_to(r/'Annotation-Training400/Disc_Cup_Masks/Glaucoma/self')
    rep = validate(tmp_path)
    assert rep.datasets[0][3:] == (2, 2, 0), rep
    assert sorted(Path(p).name for p, m in rep.problems if 'link loop' in m) == ['loop', 'self'], rep

def refuge_val(d, csv):
    r = d/'REFUGE'
    for n in ['V0001', 'V0002', 'V0003']:
        img(r/f'REFUGE-Validation400/{n}.jpg'); save(r/f'REFUGE-Validation400-GT/Disc_Cup_Masks/{n}.bmp', tern())
    text(r/'REFUGE-Validation400-GT/Fovea_locations.csv', csv)
    ds = get_dataset('refuge-official', d, 'val')
    return ds, _samples(ds)

def test_refuge_csv_ragged_row_rejected_alone(tmp_path):
    ds, ss = refuge_val(tmp_path, 'ImgName,Fovea_X,Fovea_Y,Glaucoma Label\nV0001.jpg,10,11,1\nV0002.jpg,12,13,0,1,2,3\nV0003.jpg,14,15,0\n')
    assert [(s.points.get('fovea'), s.label) for s in ss] == [((10., 11.), 1), (None, None), ((14., 15.), 0)]
    assert [(p.name, m.split(':')[0]) for p, m in ds.problems] == [('Fovea_locations.csv', 'line 3')], ds.problems
    row = validate(tmp_path).datasets[0]
    assert (row.n_images, row.n_bad) == (3, 1), row

@pytest.mark.parametrize('csv,sub', [('ImgName,Fovea_X,Glaucoma Label\nV0001.jpg,10,1\n', 'Fovea_Y'),
                                     ('V0001.jpg,10,11,1\nV0002.jpg,12,13,0\n', 'no header row')])
def test_refuge_csv_bad_header_named(tmp_path, csv, sub):
    ds, ss = refuge_val(tmp_path, csv)
    assert len(ss) == 3 and ds.problems and all(p.name == 'Fovea_locations.csv' for p, _ in ds.problems), ds.problems
    assert any(sub in m for _, m in ds.problems), ds.problems

def dgs1(d, names=('drishtiGS_001', 'drishtiGS_002', 'drishtiGS_003')):
    g = d/'Drishti-GS1/Drishti-GS1_files/Training'
    for n in names:
        img(g/f'Images/{n}.png')
        save(g/f'GT/{n}/SoftMap/{n}_ODsegSoftmap.png', np.where(tern() < 255, 255, 0).astype(np.uint8))
        save(g/f'GT/{n}/SoftMap/{n}_cupsegSoftmap.png', np.where(tern() == 0, 255, 0).astype(np.uint8))
        text(g/f'GT/{n}/{n}_cdrValues.txt', '0.5 0.6 0.55 0.5'); text(g/f'GT/{n}/AvgBoundary/{n}_diskCenter.txt', '12 14\n')
    return g

def test_counts_side_files_spoil_their_image(tmp_path):
    g = dgs1(tmp_path)
    text(g/'GT/drishtiGS_001/drishtiGS_001_cdrValues.txt', '0.5 n/a')
    text(g/'GT/drishtiGS_002/AvgBoundary/drishtiGS_002_diskCenter.txt', '12 14 16')
    dc = text(g/'GT/drishtiGS_003/AvgBoundary/drishtiGS_003_diskCenter.txt', '5000 -3')   # outside the 32x24 image
    rep = validate(tmp_path)
    assert rep.datasets == [DatasetRow('drishti-gs1', 'Training', 'Drishti-GS', 3, 3, 3)], rep
    assert [m for p, m in rep.problems if 'outside' in m and Path(p) == dc], rep       # names the diskCenter file

def test_counts_refuge_bad_rows(tmp_path):
    refuge_val(tmp_path, 'ImgName,Fovea_X,Fovea_Y,Glaucoma Label\nV0001.jpg,abc,11,1\nV0002.jpg,12,13,maybe\nV0003.jpg,14,15,0\n')
    rep = validate(tmp_path)
    assert rep.datasets[0][3:] == (3, 3, 2), rep

def test_counts_idrid_loc_points_missing(tmp_path):
    l = tmp_path/'IDRiD/C. Localization'
    for n in ['IDRiD_001', 'IDRiD_002']: img(l/f'1. Original Images/a. Training Set/{n}.jpg')
    text(l/'2. Groundtruths/1. Optic Disc Center Location/a. IDRiD_OD_Center_Training Set_Markups.csv', LOC_HDR + '\n')
    text(l/'2. Groundtruths/2. Fovea Center Location/IDRiD_Fovea_Center_Training Set_Markups.csv',
         LOC_HDR + '\nIDRiD_001,5,6\nIDRiD_002,7,8\n')
    rep = validate(tmp_path)
    assert rep.datasets == [DatasetRow('idrid-loc', 'a. Training Set', 'IDRiD', 2, 0, 2)], rep   # no image has its disc centre

def test_lesion_file_in_wrong_folder(tmp_path):
    s = tmp_path/'IDRiD/A. Segmentation'
    img(s/'1. Original Images/a. Training Set/IDRiD_01.jpg')
    gt = s/'2. All Segmentation Groundtruths/a. Training Set'
    save(gt/'1. Microaneurysms/IDRiD_01_MA.tif', np.zeros((24, 32), np.uint8)); save(gt/'5. Optic Disc/IDRiD_01_OD.tif', np.zeros((24, 32), np.uint8))
    ex = save(gt/'1. Microaneurysms/IDRiD_01_EX.tif', np.zeros((24, 32), np.uint8))
    rep = validate(tmp_path)
    assert [Path(p) for p, _ in rep.problems] == [ex] and 'MA' in rep.problems[0][1], rep
    assert rep.datasets == [DatasetRow('idrid-seg', 'a. Training Set', 'IDRiD', 1, 1, 1)], rep

def test_idrid_seg_missing_optic_disc_said(tmp_path):
    s = tmp_path/'IDRiD/A. Segmentation'
    gt = s/'2. All Segmentation Groundtruths/a. Training Set'
    for n in ['IDRiD_01', 'IDRiD_02']:
        img(s/f'1. Original Images/a. Training Set/{n}.jpg'); save(gt/f'1. Microaneurysms/{n}_MA.tif', np.zeros((24, 32), np.uint8))
    save(gt/'5. Optic Disc/IDRiD_01_OD.tif', np.zeros((24, 32), np.uint8))          # IDRiD_02 has no OD map
    rep = validate(tmp_path)
    assert msgs(rep) == ["IDRiD_02.jpg: no optic-disc map IDRiD_02_OD beside the other images' in '5. Optic Disc'"], rep
    assert rep.datasets == [DatasetRow('idrid-seg', 'a. Training Set', 'IDRiD', 2, 1, 1)], rep

def test_drishti_gs1_bad_label_entry_spoils_its_image(tmp_path):
    import pandas as pd
    g = dgs1(tmp_path)
    pd.DataFrame([['IMAGE NUMBER', 'Normal/Glaucomal'], [1, 'G'], [2, 'maybe'], [3, 'N'], [102, '']]).to_excel(
        g/'GT/Notching___Image__level_decisions.xlsx', header=False, index=False)
    rep = validate(tmp_path)
    assert msgs(rep) == ["Notching___Image__level_decisions.xlsx: line 3: image 2: label 'maybe' is neither G (glaucoma) nor N (normal)"], rep
    assert rep.datasets == [DatasetRow('drishti-gs1', 'Training', 'Drishti-GS', 3, 3, 1)], rep
    assert [s.label for s in _samples(get_dataset('drishti-gs1', tmp_path))] == [1, None, 0]

@pytest.mark.parametrize('body', ['Image No;X- Coordinate;Y - Coordinate\nIDRiD_001;714;451\n',              # ';' between cells
                                  ',Image No,X- Coordinate,Y - Coordinate\n0,IDRiD_001,714,451\n1,,,\n2,,,\n'])  # index column, blank rows
def test_point_csv_other_exports(tmp_path, body):
    assert read_points_csv(text(tmp_path/'od.csv', body)) == ({'IDRiD_001': {'x': 714., 'y': 451.}}, [])

def test_point_csv_refused_rows_spoil_their_image(tmp_path):
    l = tmp_path/'IDRiD/C. Localization'
    for n in ['IDRiD_001', 'IDRiD_002']: img(l/f'1. Original Images/a. Training Set/{n}.jpg')
    text(l/'2. Groundtruths/1. Optic Disc Center Location/a. IDRiD_OD_Center_Training Set_Markups.csv',
         LOC_HDR + '\nIDRiD_001,5,6\nIDRiD_002,7,8\nIDRiD_002,9,9\n')                   # IDRiD_002 twice
    text(l/'2. Groundtruths/2. Fovea Center Location/IDRiD_Fovea_Center_Training Set_Markups.csv', LOC_HDR + '\nIDRiD_001,5,6\nIDRiD_002,7,8\n')
    rep = validate(tmp_path)
    assert [m for m in msgs(rep)] == ['a. IDRiD_OD_Center_Training Set_Markups.csv: line 4: IDRiD_002 listed twice'], rep
    assert rep.datasets == [DatasetRow('idrid-loc', 'a. Training Set', 'IDRiD', 2, 2, 1)], rep

def test_link_back_to_the_root_not_walked(tmp_path):
    crops(tmp_path); (tmp_path/'again').symlink_to(tmp_path, target_is_directory=True)
    rep = validate(tmp_path)
    assert rep.ok and rep.datasets == [DatasetRow('drishti-gs', 'train', 'Drishti-GS', 2, 2, 0)], rep
