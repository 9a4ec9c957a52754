"The widgets driven programmatically, and run inside a real Jupyter kernel."
from pathlib import Path
import nbformat, pytest
from nbclient import NotebookClient
from fundus_bench.core import embedded_data, set_seed
from fundus_bench.widgets import browse, explore, compare
from fundus_bench.report import fake_run
from fundus_bench.train.core import save_model
from fundus_bench.models.unet import GeneralizedUNet


@pytest.fixture
def model_run(tmp_path):
    set_seed(0)
    d = tmp_path/'runs'/'quickstart'/'20260101-000000'
    save_model(GeneralizedUNet(depth=1, width=4), d, 'unet', dict(depth=1, width=4), size=32, dataset='synthetic')
    return d


def test_browser_changes():
    b = browse(embedded_data(), size=96)
    seen = {b.image.value}
    b.index.value = 2; seen.add(b.image.value)
    b.release.value = 'synthetic-whole'; seen.add(b.image.value)
    assert len(seen) == 3 and 'fovea' in b.info.value


def test_explorer_threshold_tta(model_run):
    e = explore(model_run, size=64)
    img0, txt0 = e.image.value, e.info.value
    e.thr.value = 0.2 if e.pred.mean() < 0.5 else 0.8
    assert e.image.value != img0 and e.info.value != txt0 and 'pred vCDR' in e.info.value
    e.index.value = 7; assert 'Dice disc' in e.info.value
    if not e.tta.disabled:
        e.tta.value = True; assert 'TTA' in e.info.value


def test_comparer(tmp_path):
    for i in range(3): fake_run(tmp_path, 'exp', stamp=f'2026010{i + 1}-000000', params={'lr': i}, metrics={'dice_disc': i/10})
    c = compare(tmp_path)
    assert c.df.shape[1] == 2
    assert '<tr style="background:#fff3bf"><th>lr</th>' in c.table.value   # the learning rates differ: marked
    c.pick.value = tuple(c.runs[:1]); assert c.df.shape[1] == 1 and '<th>lr</th>' in c.table.value


def test_widgets_in_kernel(model_run, tmp_path):
    src = f"""
from fundus_bench.widgets import browse, explore, compare
from fundus_bench.core import embedded_data
b = browse(embedded_data(), size=64); v = b.image.value; b.index.value = 4; assert b.image.value != v
e = explore({str(model_run)!r}, size=64); v = e.info.value; e.thr.value = 0.1 if e.pred.mean() < 0.5 else 0.9; assert e.info.value != v
display(b); display(e); print('widgets ok', len(e.samples))
"""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(src)])
    nb.metadata['kernelspec'] = {'name': 'python3', 'display_name': 'python3', 'language': 'python'}
    NotebookClient(nb, timeout=120, kernel_name='python3', resources={'metadata': {'path': str(tmp_path)}}).execute()
    outs = nb.cells[0].outputs
    assert any(o.get('output_type') == 'stream' and 'widgets ok 60' in o.get('text', '') for o in outs)
    views = [o for o in outs if o.get('output_type') == 'display_data' and 'application/vnd.jupyter.widget-view+json' in o.get('data', {})]
    assert len(views) == 2                                               # both displayed as live widgets
