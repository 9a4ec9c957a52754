"Deliberately broken or unusual inputs for `fundus_bench.data.io`: each must fail with its exact message or be repaired."
import io, struct, time, zlib, tempfile, warnings
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from hypothesis import given, settings, strategies as st, HealthCheck
from hypothesis.extra import numpy as hnp

from fundus_bench.core import BadFileError
from fundus_bench.data.io import (read_image, image_shape, read_ternary_mask, read_softmap_pair, read_binary_pair,
                                  read_lesion, check_cup_in_disc)

RNG = np.random.default_rng(0)
NOISE = RNG.integers(0, 256, (64, 64, 3), np.uint8)
TERN = np.full((6, 8), 255, np.uint8); TERN[1:5, 2:6] = 128; TERN[2:4, 3:5] = 0

def encode(a, fmt, **kw):
    b = io.BytesIO(); Image.fromarray(a).save(b, fmt, **kw); return b.getvalue()

def png_header(w, h):
    "A PNG whose header claims `w` x `h` RGB pixels, followed by almost no data."
    chunk = lambda t, b: struct.pack('>I', len(b)) + t + b + struct.pack('>I', zlib.crc32(t + b))
    return (b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0))
            + chunk(b'IDAT', zlib.compress(b'\0' * 10)) + chunk(b'IEND', b''))

@pytest.fixture
def write(tmp_path):
    "Write bytes, an array or a PIL image under `tmp_path`; return the path."
    def _write(name, o, **kw):
        p = tmp_path/name
        if isinstance(o, bytes): p.write_bytes(o)
        else: (o if isinstance(o, Image.Image) else Image.fromarray(o)).save(p, **kw)
        return p
    return _write

def fails(fn, *parts):
    "Call `fn`, expect `BadFileError`, and check every part of the message."
    with pytest.raises(BadFileError) as e: fn()
    for s in parts: assert s in str(e.value), f"{s!r} not in {str(e.value)!r}"
    return e.value

# ---------------------------------------------------------------- broken files

def test_zero_byte(write):
    p = write('zero.png', b'')
    e = fails(lambda: read_image(p), 'zero.png: empty file (0 bytes)')
    assert e.path == p and e.problem == 'empty file (0 bytes)'

def test_missing_file(tmp_path):
    fails(lambda: read_image(tmp_path/'gone.jpg'), 'gone.jpg: no such file')

def test_text_file_named_png(write):
    p = write('notes.png', b'name,disc_x\nn0001,12\n')
    fails(lambda: read_image(p), "notes.png: not an image: unknown format (file starts with b'name,disc_x\\nn000')")

def test_corrupt_png_data(write):
    b = bytearray(encode(NOISE, 'PNG')); b[len(b)//2:len(b)//2 + 50] = bytes(50)
    fails(lambda: read_image(write('corrupt.png', bytes(b))),
          'corrupt.png: corrupt or truncated image data (OSError: broken data stream when reading image file)')

def test_corrupt_png_header(write):
    b = bytearray(encode(NOISE, 'PNG')); b[20] ^= 0xff
    fails(lambda: read_image(write('ihdr.png', bytes(b))), 'ihdr.png: corrupt PNG header: the file starts like a PNG but PIL cannot parse it')

def test_corrupt_jpeg_scan(write):
    b = bytearray(encode(NOISE, 'JPEG', quality=90)); b[200:300] = RNG.integers(0, 256, 100, np.uint8).tobytes()
    fails(lambda: read_image(write('scan.jpg', bytes(b))), 'scan.jpg: corrupt or truncated image data (OSError:')

@pytest.mark.parametrize('fmt,name', [('PNG', 'cut.png'), ('JPEG', 'cut.jpg')])
@pytest.mark.parametrize('frac', [0.3, 0.9])
def test_truncated(write, fmt, name, frac):
    b = encode(NOISE, fmt, **({'quality': 90} if fmt == 'JPEG' else {}))
    fails(lambda: read_image(write(name, b[:int(len(b)*frac)])), f'{name}: corrupt or truncated image data (OSError: image file is truncated')

def test_jpeg_without_end_marker(write):
    fails(lambda: read_image(write('noeoi.jpg', encode(NOISE, 'JPEG')[:-2])), 'noeoi.jpg: corrupt or truncated image data', 'truncated')

def test_jpeg_header_only(write):
    fails(lambda: read_image(write('head.jpg', encode(NOISE, 'JPEG')[:100])), 'head.jpg: corrupt or truncated image header')

def test_huge_header_fails_fast(write):
    p = write('bomb.png', png_header(20000, 20000))
    t = time.perf_counter()
    fails(lambda: read_image(p), 'bomb.png: image too large: header claims 400,000,000 pixels, more than the limit of',
          'decompression bomb?); not decoded')
    fails(lambda: image_shape(p), 'image too large')
    fails(lambda: read_ternary_mask(p), 'image too large')
    assert time.perf_counter() - t < 1

def test_max_pixels_no_pil_warning(write):
    p = write('big.png', png_header(10000, 10000))   # above PIL's warning limit, below its error limit
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        fails(lambda: read_image(p, max_pixels=50_000_000),
              'big.png: image too large: header claims 10000x10000 = 100,000,000 pixels, more than the limit of 50,000,000')

def test_float_image_refused(write):
    fails(lambda: read_image(write('f.tif', np.zeros((2, 2), np.float32))), 'f.tif: floating-point image (mode F) is not supported')

# ---------------------------------------------------------------- broken ground truth

def test_ternary_unexpected_values(write):
    t = TERN.copy(); t[0, :3] = 77
    fails(lambda: read_ternary_mask(write('m77.png', np.dstack([t]*3))),
          'm77.png: unexpected values 77 (3 px); expected 0 (cup), 128 (rim), 255 (background)')

def test_ternary_saved_as_jpeg(write):
    e = fails(lambda: read_ternary_mask(write('lossy.png', encode(np.kron(TERN, np.ones((5, 5), np.uint8)), 'JPEG', quality=75))),
              'lossy.png: unexpected values')
    assert 'expected 0 (cup), 128 (rim), 255 (background)' in str(e)

def test_ternary_channels_disagree(write):
    fails(lambda: read_ternary_mask(write('col.png', np.dstack([TERN, TERN, TERN//2]))),
          'col.png: colour channels differ at 44 pixels; expected a grey map (R = G = B)')

def test_mask_wrong_size(write):
    p = write('m.png', TERN)
    fails(lambda: read_ternary_mask(p, shape=(6, 9)), 'm.png: size 6x8 != image size 6x9 (height x width)')
    fails(lambda: read_lesion(p, shape=(512, 512, 3)), 'm.png: size 6x8 != image size 512x512')

def test_pair_sizes_disagree(write):
    d, c = write('d.png', (TERN < 255).astype(np.uint8)*255), write('c.png', np.zeros((7, 8), np.uint8))
    fails(lambda: read_binary_pair(d, c), 'c.png: size 7x8 != disc map size 6x8')

def test_cup_outside_disc(write):
    disc = np.zeros((10, 10), np.uint8); disc[2:8, 2:8] = 255
    cup = np.zeros_like(disc); cup[3:6, 3:6] = 255; cup[0, 0] = 255
    d, c = write('disc.png', disc), write('cup.png', cup)
    fails(lambda: read_binary_pair(d, c), 'cup.png: 1 cup pixels (10.0% of the cup) lie outside the disc; tolerance 2.0%')
    m = read_binary_pair(d, c, cup_tol=0.1)                     # within tolerance: cut off
    assert not m[1, 0, 0] and m[1].sum() == 9 and not (m[1] & ~m[0]).any()

def test_all_background_mask(write):
    "An all-background map is valid ground truth (no disc): empty planes, and metrics stay defined."
    from fundus_bench.metrics import discup_scores, vcdr
    m = read_ternary_mask(write('bg.png', np.full((6, 8), 255, np.uint8)), shape=(6, 8))
    assert m.shape == (2, 6, 8) and m.dtype == bool and not m.any()
    assert vcdr(m) == 0.0
    s = discup_scores(m, m)
    assert s['dice_disc'] == 1.0 and s['dice_cup'] == 1.0 and not any(np.isnan(v) for v in s.values())
    s = discup_scores(read_ternary_mask(write('t.png', TERN)), m)
    assert s['dice_disc'] == 0.0 and not any(np.isnan(v) for v in s.values())

def test_binary_mixing_1_and_255(write):
    disc = (TERN < 255).astype(np.uint8)*255; disc[1, 2] = 1
    fails(lambda: read_binary_pair(write('d.png', disc), write('c.png', (TERN == 0).astype(np.uint8))),
          'd.png: unexpected values 1 (1 px); expected 0/255 or 0/1')

def test_softmap_off_level_value(write):
    od = np.array([[0, 64, 128, 191, 255, 100]], np.uint8)
    fails(lambda: read_softmap_pair(write('od.png', od), write('cup.png', np.zeros_like(od))),
          'od.png: unexpected values 100 (1 px); expected expert-agreement levels 0/64/128/191/255 (4 experts)')

@pytest.mark.parametrize('kw,msg', [({'min_experts': 0}, 'min_experts=0 must be between 1 and n_experts=4'),
                                    ({'min_experts': 5}, 'min_experts=5 must be between 1 and n_experts=4'),
                                    ({'n_experts': 0}, 'n_experts=0 must be between 1 and 255')])
def test_softmap_bad_threshold_arguments(write, kw, msg):
    p = write('od.png', np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=msg) as e: read_softmap_pair(p, p, **kw)
    assert not isinstance(e.value, BadFileError)

def test_lesion_missing_is_empty(tmp_path):
    m = read_lesion(tmp_path/'IDRiD_43_HE.tif', (4, 5))
    assert m.shape == (4, 5) and m.dtype == bool and not m.any()
    assert not read_lesion(None, (4, 5, 3)).any()

def test_lesion_palette_tiff(write):
    les = np.zeros((6, 8), np.uint8); les[2, 3] = 1
    im = Image.fromarray(les, 'P'); im.putpalette([0, 0, 0, 255, 0, 0])
    p = write('IDRiD_01_MA.tif', im, compression='tiff_adobe_deflate')
    assert (read_lesion(p, (6, 8)) == (les > 0)).all()
    fails(lambda: read_lesion(write('l.png', les*7), (6, 8)), 'l.png: unexpected values 7 (1 px); expected 0/255 or 0/1')

def test_check_cup_in_disc_needs_planes():
    with pytest.raises(ValueError, match='expected'): check_cup_in_disc(np.zeros((3, 4, 4), bool))

# ---------------------------------------------------------------- repaired to RGB uint8

def rgb_ok(a, shape):
    assert a.dtype == np.uint8 and a.shape == shape and a.flags.writeable

def test_grey_to_rgb(write):
    g = NOISE[..., 0]
    a = read_image(write('g.png', g)); rgb_ok(a, (64, 64, 3))
    assert (a == g[..., None]).all()

def test_rgba_composited_over_black(write):
    rgba = np.dstack([NOISE, np.full((64, 64), 255, np.uint8)]); rgba[:32, :, 3] = 0
    a = read_image(write('a.png', rgba)); rgb_ok(a, (64, 64, 3))
    assert (a[:32] == 0).all() and (a[32:] == NOISE[32:]).all()

def test_la_to_rgb(write):
    la = np.dstack([NOISE[..., 0], np.full((64, 64), 255, np.uint8)])
    a = read_image(write('la.png', la)); rgb_ok(a, (64, 64, 3))
    assert (a[..., 2] == NOISE[..., 0]).all()

def test_16bit_scaled_not_clipped(write):
    g16 = np.array([[0, 256, 32768, 65535]], np.uint16)
    a = read_image(write('g16.png', g16)); rgb_ok(a, (1, 4, 3))
    assert a[0, :, 0].tolist() == [0, 1, 128, 255]

def test_palette_to_rgb(write):
    p = Image.fromarray(NOISE).quantize(16)
    a = read_image(write('p.png', p)); rgb_ok(a, (64, 64, 3))
    assert (a == np.asarray(p.convert('RGB'))).all()

def test_one_bit_and_cmyk(write):
    bits = NOISE[..., 0] > 128
    assert (read_image(write('b.png', bits))[..., 0] == bits*255).all()
    assert (read_image(write('c.tif', Image.fromarray(NOISE).convert('CMYK'))) == NOISE).all()

def test_exif_rotated_jpeg(write):
    side = np.zeros((40, 80, 3), np.uint8); side[:, :40] = (255, 0, 0)
    ex = Image.Exif(); ex[0x0112] = 6
    p = write('rot.jpg', side, exif=ex, quality=95)
    a = read_image(p); rgb_ok(a, (80, 40, 3))
    assert image_shape(p) == (80, 40)
    assert a[:30, :, 0].mean() > 200 and a[50:, :, 0].mean() < 50

def test_jpeg_named_png_is_read(write):
    rgb_ok(read_image(write('really_a_jpeg.png', encode(NOISE, 'JPEG'))), (64, 64, 3))

# ---------------------------------------------------------------- properties

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

@SETTINGS
@given(hnp.arrays(np.uint8, st.tuples(st.integers(1, 12), st.integers(1, 12)), elements=st.sampled_from([0, 128, 255])),
       st.sampled_from(['L', 'RGB', 'RGBA']), st.sampled_from(['png', 'bmp', 'tif']))
def test_ternary_roundtrip(v, mode, ext):
    if ext == 'bmp' and mode == 'RGBA': mode = 'RGB'
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)/f'm.{ext}'
        Image.fromarray(v).convert(mode).save(p)
        if (v == 0).any() and not (v == 128).any():     # cup without any rim: a binary mask, refused
            with pytest.raises(BadFileError, match='no rim'): read_ternary_mask(p, v.shape)
            return
        m = read_ternary_mask(p, v.shape)
    assert m.dtype == bool and m.shape == (2,) + v.shape
    assert (m[0] == (v < 255)).all() and (m[1] == (v == 0)).all()
    assert not (m[1] & ~m[0]).any()

@SETTINGS
@given(hnp.arrays(np.uint16, st.tuples(st.integers(1, 10), st.integers(1, 10))))
def test_uint16_grey_keeps_order(v):
    with tempfile.TemporaryDirectory() as d:
        p = Path(d)/'g16.png'; Image.fromarray(v).save(p)
        a = read_image(p)
    assert a.dtype == np.uint8 and a.shape == v.shape + (3,)
    assert (a[..., 0] == a[..., 1]).all() and (a[..., 0] == a[..., 2]).all()
    o = np.argsort(v, axis=None, kind='stable')
    assert (np.diff(a[..., 0].ravel()[o].astype(int)) >= 0).all()          # order kept
    assert a.max() == round(int(v.max())/257)                              # scaled, not clipped

@SETTINGS
@given(st.data())
def test_softmap_threshold_matches_expert_count(data):
    shape = data.draw(st.tuples(st.integers(1, 8), st.integers(1, 8)))
    kd = data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 4)))
    kc = np.minimum(kd, data.draw(hnp.arrays(np.uint8, shape, elements=st.integers(0, 4))))   # cup experts <= disc experts
    me = data.draw(st.integers(1, 4))
    lv = np.array([0, 64, 128, 191, 255], np.uint8)
    with tempfile.TemporaryDirectory() as d:
        pd, pc = Path(d)/'od.png', Path(d)/'cup.png'
        Image.fromarray(lv[kd]).save(pd); Image.fromarray(lv[kc]).save(pc)
        m = read_softmap_pair(pd, pc, shape, min_experts=me)
    assert (m[0] == (kd >= me)).all() and (m[1] == (kc >= me)).all()

def test_binary_disc_mask_read_as_ternary_refused(write):
    "A 0/255 disc mask in a 0/128/255 layout would make disc and cup the background: refused, naming the file."
    p = write('g01.png', np.where(TERN < 255, 255, 0).astype(np.uint8))
    fails(lambda: read_ternary_mask(p, TERN.shape), 'g01.png: cup (0, 32 px) but no rim (128) pixels: looks like a binary 0/255 mask')
    assert read_ternary_mask(write('nocup.png', np.where(TERN == 0, 128, TERN)), TERN.shape)[1].sum() == 0   # rim, no cup: kept
