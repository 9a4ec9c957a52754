"The HTML report and the batch runner, on fake run folders and two tiny experiment notebooks."
import json, os, re
from pathlib import Path
import pytest
from fundus_bench.report import write_report, fake_run, data_fingerprint, run_data_root
from fundus_bench.batch import run_all, tiny_experiment, OK_BODY
from fundus_bench.published import published_results, PAPERS
from fundus_bench.cli import main


def test_report_fake_runs(tmp_path):
    fake_run(tmp_path, 'rfnet', stamp='20260101-000000', params={'data_root': str(tmp_path)},
             metrics={'dice_cup': 0.8, 'history': [{'train_loss': 1.0, 'dice': 0.5}, {'train_loss': 0.4, 'dice': 0.7}]},
             table={'method': ['ours'], 'dice_cup': [0.8]})
    fake_run(tmp_path, 'quickstart', stamp='20260102-000000', metrics={'dice_disc': 0.9}, png=False)
    fp = data_fingerprint(tmp_path)                                    # the run's data root is the temp folder itself
    out = write_report(runs_dir=tmp_path, out=tmp_path/'report.html')
    s = out.read_text()
    assert s.startswith('<!DOCTYPE html>') and s.count('<section') == 2
    assert 'RF-Net' in s and f'Published ({PAPERS["rfnet"]})' in s               # published rows beside the run's table
    head, body = s.split('</head>')                                     # plotly.js, inline, in the head
    assert body.count('data:image/png;base64,') == 2                   # training curves (for readers without JavaScript) + the run's PNG
    assert 'Plotly.newPlot' in body and head.count('<script') == 1     # the curves interactive, plotly.js once
    assert fp['hash'] in s
    assert not re.search(r'(src|href)="https?:', body)                 # self-contained


def test_report_escapes(tmp_path):
    evil = '<script>alert(1)</script>'
    fake_run(tmp_path, evil, status='failed', params={evil: evil}, error=f'ValueError: {evil}')
    s = write_report(runs_dir=tmp_path, out=tmp_path/'r.html').read_text()
    assert '<script>' not in s and '&lt;script&gt;alert(1)&lt;/script&gt;' in s
    assert 'class="status failed"' in s


def test_fingerprint_changes(tmp_path):
    (tmp_path/'a.png').write_bytes(b'1')
    f = data_fingerprint(tmp_path)
    (tmp_path/'b.png').write_bytes(b'1')
    assert data_fingerprint(tmp_path)['hash'] != f['hash'] and data_fingerprint(tmp_path)['files'] == 2


def test_published_papers():
    df = published_results()
    assert set(df.source) == set(PAPERS)
    r = published_results('rfnet', 'Table 1').query("row == 'RF-Net' and dataset == 'Drishti-GS' and metric == 'dice_cup'")
    assert r.value.item() == pytest.approx(0.946)
    assert published_results('redseg', 'Table 4').query("row == 'VRT (1st)' and metric == 'aupr_he'").value.item() == pytest.approx(0.6804)


@pytest.fixture
def tiny_exps(tmp_path, monkeypatch):
    ex = tmp_path/'exps'
    tiny_experiment(ex/'00_good.ipynb', OK_BODY)
    tiny_experiment(ex/'01_bad.ipynb', 'raise RuntimeError("this notebook fails")')
    (ex/'profile-tiny.yaml').write_text('all:\n  n: 2\ngood:\n  n: 5\n')
    monkeypatch.setenv('FUNDUS_BENCH_EXPERIMENTS', str(ex))
    return tmp_path


def test_run_all_continues_past_failure(tiny_exps):
    t = tiny_exps
    rc = main(['run-all', '--profile', 'tiny', '-p', 'n', '7', '--runs-dir', str(t/'runs'), '--out', str(t/'report.html'), '--jobs', '2'])
    assert rc == 1                                                       # one experiment failed
    good, bad = (next((t/'runs'/n).iterdir()) for n in ('good', 'bad'))
    assert json.loads((good/'run.json').read_text())['status'] == 'done'
    assert json.loads((good/'metrics.json').read_text())['n'] == 7        # -p wins over the profile
    info = json.loads((bad/'run.json').read_text())
    assert info['status'] == 'failed' and 'this notebook fails' in info['error']
    assert 'this notebook fails' in (bad/'bad.ipynb').read_text()       # the executed notebook keeps the error cell
    s = (t/'report.html').read_text()
    assert 'class="status failed"' in s and 'class="status done"' in s and 'this notebook fails' in s


def test_report_cli(tiny_exps):
    t = tiny_exps
    r = run_all(None, runs_dir=t/'runs', names=['good'], report=None, log=lambda *a: None)
    assert r['report'] is None and r['runs'][0]['status'] == 'done'
    assert main(['report', r['runs'][0]['run_dir'], '--out', str(t/'one.html')]) == 0
    assert 'good' in (t/'one.html').read_text()


THREADS_BODY = """import json, os, pathlib, torch
pathlib.Path(out_dir, 'metrics.json').write_text(json.dumps({'omp': os.environ.get('OMP_NUM_THREADS'), 'torch': torch.get_num_threads()}))"""

def test_run_all_shares_cores(tmp_path, monkeypatch):
    "Parallel experiments each get their share of the cores as torch threads; `threads` wins; the caller's environment is restored."
    from fundus_bench.batch import job_threads
    ex = tmp_path/'exps'
    tiny_experiment(ex/'00_a.ipynb', THREADS_BODY); tiny_experiment(ex/'01_b.ipynb', THREADS_BODY)
    monkeypatch.setenv('FUNDUS_BENCH_EXPERIMENTS', str(ex)); monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    def seen(r): return [json.loads((Path(o['run_dir'])/'metrics.json').read_text()) for o in r['runs']]
    want = job_threads(2)
    r = run_all(None, runs_dir=tmp_path/'runs', jobs=2, report=None, log=lambda *a: None)
    assert [o['status'] for o in r['runs']] == ['done', 'done']
    assert seen(r) == [{'omp': str(want), 'torch': want}]*2
    r = run_all(None, runs_dir=tmp_path/'runs', names=['a'], threads=1, report=None, log=lambda *a: None)
    assert seen(r) == [{'omp': '1', 'torch': 1}]
    assert 'OMP_NUM_THREADS' not in os.environ      # a one-job run in this process leaves no trace


def test_former_experiment_names(capsys):
    "Every former experiment name still finds its notebook (with a note), and every paper experiment cites a paper in the published table."
    from fundus_bench.experiments import RENAMED, find_experiment, list_experiments
    from fundus_bench.published import EXPERIMENT_PAPERS, paper_of
    exps = list_experiments()
    for old, new in RENAMED.items():
        with pytest.warns(DeprecationWarning): assert find_experiment(old) == exps[new]
        assert paper_of(old) == paper_of(new) == EXPERIMENT_PAPERS[new]
    assert "'seed000_rfnet' is now called 'rfnet'" in capsys.readouterr().err
    assert not any(n.startswith('seed0') for n in exps)
    assert set(EXPERIMENT_PAPERS) <= set(exps) and set(published_results().source) == set(EXPERIMENT_PAPERS.values())
