"""The tutorial as a reader meets it: `fundus-bench tutorial` starts JupyterLab on a copy, headless Chromium runs every
cell at tiny settings, moves the model explorer's threshold and checks that its picture and vCDR text follow.

Needs Chromium (Debian's `chromium` package; `.ci/run` installs it) and playwright (in the dev set); skipped otherwise.
Screenshots of each widget and of the report go to `$FUNDUS_BENCH_SHOTS` when it is set."""
import os, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

CHROMIUM = next((p for p in (os.environ.get('FUNDUS_BENCH_CHROMIUM'), '/usr/bin/chromium', shutil.which('chromium'))
                 if p and Path(p).is_file()), None)
FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run']
TINY = 'epochs, size, n_train = 1, 32, 8'
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason='browser test: no Chromium found (apt-get install chromium; .ci/run does)')


def _free_port()->int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _wait(pred, timeout:float, what:str, step:float=0.5):
    t = time.time()
    while time.time() - t < timeout:
        if pred(): return
        time.sleep(step)
    raise AssertionError(f'timed out after {timeout:.0f} s waiting for {what}')

def _up(url)->bool:
    try: return urllib.request.urlopen(url, timeout=2).status == 200
    except OSError: return False


@pytest.fixture
def lab(tmp_path):
    "JupyterLab started by `fundus-bench tutorial` in a fresh folder, on the embedded synthetic data: `(url, folder)`."
    from fundus_bench.core import embedded_data
    if shutil.which('jupyter-lab') is None: pytest.skip('browser test: JupyterLab is not installed (pip install -e ".[dev]")')
    port, token = _free_port(), 'fundus-bench-test'
    env = os.environ | dict(FUNDUS_BENCH_DATA=str(embedded_data()), OMP_NUM_THREADS='1', JUPYTER_CONFIG_DIR=str(tmp_path/'cfg'),
                            JUPYTER_RUNTIME_DIR=str(tmp_path/'rt'), JUPYTERLAB_WORKSPACES_DIR=str(tmp_path/'ws'))
    cmd = [sys.executable, '-c', 'import sys; from fundus_bench.cli import main; sys.exit(main())', 'tutorial', '--dir', 'runs', '--',
           '--no-browser', f'--port={port}', '--ip=127.0.0.1', f'--IdentityProvider.token={token}', '--ServerApp.root_dir=.']
    if os.geteuid() == 0: cmd.append('--allow-root')   # containers
    log = open(tmp_path/'lab.log', 'w')
    p = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        nb = tmp_path/'runs'/'tutorial.ipynb'
        _wait(nb.exists, 30, 'the copy of the tutorial')
        s = nb.read_text(); assert 'epochs, size, n_train = 3, 64, None' in s
        nb.write_text(s.replace('epochs, size, n_train = 3, 64, None', TINY))   # before the browser opens it
        _wait(lambda: _up(f'http://127.0.0.1:{port}/api/status?token={token}'), 60, 'JupyterLab to answer')
        yield f'http://127.0.0.1:{port}/lab/tree/runs/tutorial.ipynb?token={token}', tmp_path
    finally:
        os.killpg(p.pid, signal.SIGTERM)
        try: p.wait(10)
        except subprocess.TimeoutExpired: os.killpg(p.pid, signal.SIGKILL); p.wait()
        log.close()


def _output_with(page, label:str):
    "The output area of the cell whose widget has a control labelled `label`."
    return page.locator('.jp-OutputArea-output').filter(has=page.locator('.widget-label', has_text=label)).last

def test_tutorial_in_jupyterlab(lab):
    sync_api = pytest.importorskip('playwright.sync_api', reason='browser test: playwright is not installed (pip install -e ".[dev]")')
    url, folder = lab
    shots = Path(os.environ['FUNDUS_BENCH_SHOTS']) if os.environ.get('FUNDUS_BENCH_SHOTS') else None
    if shots: shots.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = b.new_page(viewport=dict(width=1400, height=1800))
        page.goto(url)
        page.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=60_000)
        try: page.locator('.jp-Dialog button', has_text='Select').click(timeout=10_000)   # JupyterLab may ask which kernel
        except sync_api.TimeoutError: pass
        try: page.locator('.jp-toast-button', has_text='No').click(timeout=3_000)   # JupyterLab's offer of news
        except sync_api.TimeoutError: pass
        page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', state='attached', timeout=60_000)
        page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
        page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
        n = page.locator('.jp-CodeCell').count()
        # done: every code cell has its execution number, none is waiting ([*] or [ ])
        try: page.wait_for_function("""n => { const ps = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                                            return ps.length == n && ps.every(p => /\\[\\d+\\]/.test(p.textContent)); }""", arg=n, timeout=150_000)
        except sync_api.TimeoutError:
            page.screenshot(path=str(folder/'timeout.png'), full_page=True)
            raise AssertionError('the tutorial did not finish; prompts: ' + str(page.locator('.jp-CodeCell .jp-InputPrompt').all_inner_texts()) +
                                 f'; screenshot {folder/"timeout.png"}') from None
        text = page.locator('.jp-Notebook').inner_text()
        assert 'Traceback' not in text, text[-3000:]

        ex = _output_with(page, 'threshold')
        info = ex.locator('.widget-html-content', has_text='threshold').first
        img = ex.locator('img.widget-image').first
        ex.scroll_into_view_if_needed()   # JupyterLab does not lay out cells out of view
        sync_api.expect(info).to_contain_text('vCDR', timeout=30_000)   # the widget's view has drawn
        lines = lambda: info.evaluate(r"e => e.innerHTML.split(/<br\s*\/?>/).map(s => s.replace(/<[^>]*>/g, '').trim())")
        before, pic = lines(), img.screenshot()
        def pred(ls):
            ls = [l for l in ls if l.startswith('pred')]
            assert ls, f'no predicted vCDR line in the explorer: {ls!r}'
            return ls[0]
        if shots:
            for lbl, name in (('release', 'browse'), ('threshold', 'explore'), ('runs', 'compare')):
                _output_with(page, lbl).screenshot(path=str(shots/f'{name}.png'))
            ex.scroll_into_view_if_needed()
        handle = ex.locator('.widget-slider', has=page.locator('.widget-label', has_text='threshold')).locator('.noUi-handle')
        handle.focus(); page.keyboard.press('Home' if 'no disc' in pred(before) else 'End')   # to 0.05, or to 0.95
        html = info.inner_html()
        page.wait_for_function('([e, t]) => e.innerHTML != t', arg=[info.element_handle(), html], timeout=30_000)
        after = lines()
        assert {'threshold 0.05', 'threshold 0.95'} & set(after) and pred(after) != pred(before), (before, after)
        assert img.screenshot() != pic   # the outlines were redrawn
        if shots: ex.screenshot(path=str(shots/'explore_moved.png'))

        report = folder/'runs'/'report.html'
        assert report.is_file()
        r = b.new_page(viewport=dict(width=1400, height=1000)); r.goto(report.as_uri())
        r.wait_for_selector('.plot .plotly', timeout=30_000)   # the interactive curves drew
        if shots: r.screenshot(path=str(shots/'report.png'), full_page=True)
        b.close()
