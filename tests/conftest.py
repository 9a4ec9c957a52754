import os
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent

def real_data_root():
    "The real-data folder: $FUNDUS_BENCH_DATA, else ../shared/data beside the project, else None."
    for p in (os.environ.get('FUNDUS_BENCH_DATA'), ROOT.parent/'shared'/'data'):
        if p and Path(p).is_dir(): return Path(p).resolve()
    return None

@pytest.fixture(scope='session')
def data_root():
    r = real_data_root()
    if r is None: pytest.skip('real data not present (set FUNDUS_BENCH_DATA or put it in ../shared/data)')
    return r
