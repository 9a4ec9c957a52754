"The package's layers look only down: every import of a `fundus_bench` module (at module level or inside a function) goes to the same layer or one below, and no modules import each other in a circle."
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parent.parent/'fundus_bench'

# Layer of each module, by the longest matching name prefix; a module may import its own layer or lower ones.
LAYERS = {
    'core': 0,
    'metrics': 1, 'postprocess': 1,                      # array functions on top of core only
    'data': 2,                                           # catalog, io, preprocess, augment, loaders, ...
    'models': 3, 'losses': 3, 'losses_redseg': 3,
    'infer': 4, 'locate': 4, 'viz': 4,
    'train': 5,
    'tasks': 6,
    'experiments': 7, 'published': 7, 'cluster': 7, 'bench': 7,
    'report': 8, 'batch': 8, 'widgets': 8, 'cli': 8}

def modname(f:Path)->str:
    parts = list(f.relative_to(PKG).with_suffix('').parts)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)

MODULES = {modname(f): f for f in PKG.rglob('*.py') if f.name != '_modidx.py'}

def layer(m:str)->int:
    if m == '': return 0    # the package's __init__
    ks = [k for k in LAYERS if m == k or m.startswith(k + '.')]
    if not ks: raise KeyError(f"fundus_bench.{m}: not placed in a layer; add it to LAYERS in {Path(__file__).name}")
    return LAYERS[max(ks, key=len)]

def own_imports(m:str, src:str)->list:
    "`(target module, line)` of every import of a package module in `src` (module `m`)."
    base = m.split('.') if MODULES[m].name == '__init__.py' else m.split('.')[:-1]
    out = []
    for n in ast.walk(ast.parse(src)):
        if isinstance(n, ast.Import):
            out += [(a.name[len('fundus_bench.'):], n.lineno) for a in n.names if a.name.startswith('fundus_bench.')]
        elif isinstance(n, ast.ImportFrom):
            if n.level: tgt = '.'.join(base[:len(base) - (n.level - 1)] + ([n.module] if n.module else []))
            elif (n.module or '').split('.')[0] == 'fundus_bench': tgt = n.module[len('fundus_bench.'):] if '.' in n.module else ''
            else: continue
            subs = [f'{tgt}.{a.name}'.lstrip('.') for a in n.names if f'{tgt}.{a.name}'.lstrip('.') in MODULES]
            out += [(t, n.lineno) for t in (subs or [tgt])]
    return [(t, l) for t, l in out if t != m]

def graph()->dict:
    return {m: own_imports(m, f.read_text()) for m, f in MODULES.items()}

def upward(g:dict)->list:
    return [f"fundus_bench/{MODULES[m].relative_to(PKG)}:{l}: {m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
            for m, ts in g.items() for t, l in ts if layer(t) > layer(m)]

def cycles(g:dict)->list:
    "Strongly connected groups of more than one module (Tarjan)."
    edges = {m: {t for t, _ in ts if t in g} for m, ts in g.items()}
    idx, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        idx[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in idx: visit(w); low[v] = min(low[v], low[w])
            elif w in on: low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            c = []
            while True:
                w = stack.pop(); on.discard(w); c.append(w)
                if w == v: break
            if len(c) > 1: out.append(sorted(c))
    for v in sorted(edges):
        if v not in idx: visit(v)
    return out

def test_every_module_has_a_layer():
    for m in MODULES: layer(m)

def test_no_upward_imports():
    bad = upward(graph())
    assert not bad, 'imports that look up a layer:\n' + '\n'.join(bad)

def test_no_cycles():
    cs = cycles(graph())
    assert not cs, 'modules importing each other in a circle: ' + '; '.join(' <-> '.join(c) for c in cs)

def packages(g:dict)->dict:
    "The import graph between top-level parts (`data`, `models`, `train`, `infer`...), imports inside a part left out."
    top = lambda m: m.split('.')[0]
    out = {}
    for m, ts in g.items(): out.setdefault(top(m), []).extend((top(t), l) for t, l in ts if top(t) != top(m))
    return out

def test_no_package_cycles():
    "No two parts import each other, even through different modules (e.g. data.domains -> infer -> data.loaders)."
    cs = cycles(packages(graph()))
    assert not cs, 'parts importing each other in a circle: ' + '; '.join(' <-> '.join(c) for c in cs)

def test_checks_can_fail():
    "The checks see imports inside functions, relative and absolute forms, submodules named in `from X import y`, and cycles."
    src = "from ..core import x\ndef f():\n    from fundus_bench.train.core import load_model\n    from fundus_bench import cli\n"
    g = {'data.io': own_imports('data.io', src)}
    assert [t for t, _ in g['data.io']] == ['core', 'train.core', 'cli']
    assert len(upward(g)) == 2
    assert cycles({'a': [('b', 1)], 'b': [('c', 1)], 'c': [('a', 1)], 'd': [('a', 1)]}) == [['a', 'b', 'c']]
    assert cycles(packages({'data.domains': [('infer', 1)], 'infer': [('data.loaders', 1)], 'data.loaders': []})) == [['data', 'infer']]
    with pytest.raises(KeyError, match='not placed in a layer'): layer('newthing')
