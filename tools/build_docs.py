"""Build miniai's docs site into `_docs/` with Sphinx + MyST-NB (`make docs`), offline, then open `_docs/index.html`.

1. nbdev's doc processors (those `nbdev-proc-nbs` runs) process every `nbs/*.ipynb` into `_proc/sphinx/<page>.ipynb`
   (`09_learner.ipynb` -> `learner.ipynb`, so pages keep nbdev's names): exported code hidden, a `show_doc` entry for
   each exported name, run as `nbdev-docs` runs it. Ours on top: `show_doc` adds the docments parameter table and an
   entry per public method with a docstring (`Learner.fit`); `@fc.patch` is named like `@patch`; Quarto cell options
   become MyST-NB tags; links to notebooks and to the published site become links between pages.
2. Sphinx (config: tools/docs/conf.py) renders the saved outputs with the furo theme, a search index and MathJax
   copied from Debian's `libjs-mathjax`. `--strict` only runs step 1 as `nbdev-docs` would and names failing cells.
"""
import argparse, ast, inspect, os, re, shutil, subprocess, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
MATHJAX = Path(os.environ.get('MINIAI_MATHJAX', '/usr/share/javascript/mathjax'))  # Debian's libjs-mathjax (MathJax 2)
TAGS = {'echo: false': 'remove-input', 'output: false': 'remove-output', 'include: false': 'remove-cell',
        'hide': 'remove-cell'}   # Quarto cell options -> MyST-NB cell tags

def notebooks(path):
    "The notebooks in `path` in filename order (as nbdev's sidebar), `index.ipynb` first."
    return sorted((p for p in Path(path).glob('*.ipynb') if p.name[0] not in '_.'), key=lambda p: (p.stem!='index', p.name))

def _patch_nbdev():
    "`show_doc` with the docments table and public methods; `@fc.patch`/`@fc.patch_to` named as `@patch` ones."
    from nbdev import doclinks
    from nbdev.showdoc import BasicMarkdownRenderer as R
    from fastcore.docments import DocmentTbl
    if getattr(R, '_miniai', False): return
    decor_id = doclinks.decor_id
    doclinks.decor_id = lambda d: f.attr if isinstance(f := getattr(d, 'func', d), ast.Attribute) else decor_id(d)
    orig = R._repr_markdown_
    def _repr_markdown_(self):
        md, cls = orig(self), inspect.isclass(self.sym)
        if cls: md = md.replace('```python\ndef ', '```python\nclass ', 1)
        try: md += '\n\n' + DocmentTbl(self.sym)._repr_markdown_().replace('| NoneType | None |', '|  | None |')
        except (TypeError, ValueError): pass   # `inspect.signature` finds no signature to tabulate (a builtin, say)
        md = md.replace(':NoneType=None', '=None').replace('__main__.', '')
        meths = [(k, v) for k, v in vars(self.sym).items() if cls and k[0]!='_' and inspect.isfunction(v) and v.__doc__]
        return md + ''.join('\n\n' + R(v, name=f'{self.nm}.{k}', title_level=4)._repr_markdown_() for k, v in meths)
    R._repr_markdown_, R._miniai = _repr_markdown_, True

def to_myst(nb, src, cfg, pages):
    "Quarto cell options -> MyST-NB tags; links to notebooks -> the published site's URLs (`fix_links` makes them local)."
    site, stems = site_url(cfg), {p.stem: page for p, page in pages}
    nb_link = lambda m: f'](' + site + f'/{stems.get(m.group(1), m.group(1))}.html'
    for c in nb.cells:
        if c.cell_type=='markdown': c.source = re.sub(r'\]\((?:\./)?(\w+)\.ipynb', nb_link, c.source)
        if c.cell_type!='code': continue
        opts = re.findall(r'^#\|\s*(.*?)\s*$', c.source, re.M)
        c.source = re.sub(r'^#\|.*\n?', '', c.source, flags=re.M).strip()
        tags = {*c.metadata.get('tags', []), *(TAGS[o] for o in opts if o in TAGS), *(['remove-input'] * (not c.source))}
        c.metadata['tags'] = sorted(tags)
        for d in (o.get('data', {}) for o in c.get('outputs', [])):
            if 'text/markdown' in d:   # show_doc: no rules between entries, no Quarto `{target=...}` after its source link
                d['text/markdown'] = re.sub(r'(\]\([^)\s]*\))\{[^}]*\}|^---$', r'\1', ''.join(d['text/markdown']), flags=re.M)
            if 'text/html' in d:   # offline: no stylesheets from a CDN (matplotlib's animations link one)
                d['text/html'] = re.sub(r'<link\b[^>]*\bhref="https?://[^>]*>', '', ''.join(d['text/html']))
    import nbformat.v4 as v4
    path = f'{cfg.nbs_path.name}/{src.name}'
    link = f'Notebook [`{path}`]({cfg.git_url}/blob/{cfg.branch}/{path}): run it in Jupyter (`make lab`) to change and re-run it.'
    if src.stem!='index': nb.cells.insert(1, v4.new_markdown_cell(link))
    else: nb.cells.append(v4.new_markdown_cell('```{toctree}\n:hidden:\n\n' + '\n'.join(pg for _, pg in pages[1:]) + '\n```'))
    nb.metadata = dict(language_info=dict(name='python', pygments_lexer='ipython3'))   # nbdev keeps no kernel info
    for c in nb.cells:   # drop nbdev's bookkeeping (`idx_`, `has_sd`): not valid nbformat
        for k in set(c) - {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}: del c[k]
        c.metadata.pop('execution', None)   # execnb's float timings, where nbformat wants strings

def site_url(cfg): return f"{cfg.get('doc_host', '')}{cfg.get('doc_baseurl', '')}".rstrip('/')

def _why(e):
    "Where and why nbdev stopped: its error holds the cell's number and source, its cause the cell's own error."
    c, m = e.__cause__ or e, re.search(r'in cell (\d+) :\n(.*)', str(e))
    why = [l.strip() for l in f'{type(c).__name__}: {c}'.splitlines() if re.match(r'\s*\w*(Error|Exception)\b', l)]
    return (f'cell {m[1]} (`{m[2]}`...): ' if m else '') + (why or [type(c).__name__])[-1]

def proc_one(src, dst, strict=False, pages=()):
    "nbdev-process `src` (as `nbdev-docs` does when `strict`) into `dst`; return (name, error or None, note or None)."
    os.environ['IN_TEST'] = '1'   # what nbdev's own driver sets while processing
    import warnings; warnings.filterwarnings('ignore', message='Found cells containing imports')
    from fastcore.nbio import read_nb, write_nb
    from nbdev.config import get_config
    from nbdev.processors import FilterDefaults, exec_show_docs
    from nbdev.frontmatter import FrontmatterProc
    _patch_nbdev()
    skip = set() if strict else {FrontmatterProc}   # the title cell stays markdown: Sphinx takes the page title from it
    class Procs(FilterDefaults):
        def base_procs(self): return [p for p in super().base_procs() if p not in skip]
    nb, note = read_nb(src), None
    try: Procs()(nb)
    except Exception as e:
        if strict: return src.name, _why(e), None
        note, nb = f'show_doc cells not run: nbdev-docs would stop at {_why(e)}', read_nb(src)
        skip.add(exec_show_docs); Procs()(nb)
    if not strict:
        to_myst(nb, Path(src), get_config(), list(pages))
        write_nb(nb, dst)
    return src.name, None, note

def fix_links(html, site, ids):
    "Links to the published site -> relative links; a #fragment that names no element -> the nearest one that exists."
    def sub(m):
        page, _, frag = m.group(1).partition('#')
        if frag and frag not in ids.get(page, ()):
            from docutils.nodes import make_id
            parts = frag.split('.')
            while parts and make_id('.'.join(parts)) not in ids.get(page, ()): parts.pop()
            frag = make_id('.'.join(parts)) if parts else ''
        return f'href="{page or "index.html"}' + (f'#{frag}"' if frag else '"')
    return re.sub(r'href="' + re.escape(site) + r'/([^"]*)"', sub, html)

def build(root, strict=False):
    "Process every notebook with nbdev (two at a time), then render the site with Sphinx; `strict`: only report. Exit status."
    t0, root = time.time(), Path(root).resolve()
    os.chdir(root); sys.path[:0] = [str(root), str(TOOLS)]
    import build_docs   # workers need this module by name: functions of `__main__` are not found there (IPython replaces it)
    from nbdev.config import get_config, nbpath2html
    cfg = get_config()
    nbs, src, out = notebooks(cfg.nbs_path), root/'_proc'/'sphinx', cfg.doc_path
    if not nbs or nbs[0].stem!='index': raise SystemExit(f'{cfg.nbs_path}/index.ipynb (the home page) is missing')
    if not strict and not (MATHJAX/'MathJax.js').exists() and os.geteuid()==0:   # as `make test` does for chromium
        print("[docs] installing Debian's libjs-mathjax", flush=True)
        subprocess.run('apt-get install -y -q libjs-mathjax || { apt-get update -q && apt-get install -y -q libjs-mathjax; }',
                       shell=True, capture_output=True)
    if not strict and not (MATHJAX/'MathJax.js').exists():
        raise SystemExit(f'no MathJax in {MATHJAX}: `apt-get install libjs-mathjax` (or set MINIAI_MATHJAX)')
    pages = [(p, nbpath2html(Path(p.name)).stem) for p in nbs]
    if len({pg for _, pg in pages})<len(pages): raise SystemExit(f'two notebooks make one page: {[p.name for p, _ in pages]}')
    for d in ([] if strict else [src, out, root/'_proc'/'html']): shutil.rmtree(d, ignore_errors=True)
    src.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(min(2, os.cpu_count() or 1)) as ex:
        res = list(ex.map(build_docs.proc_one, nbs, [src/f'{pg}.ipynb' for _, pg in pages], [strict]*len(nbs),
                          [pages]*len(nbs)))
    for n, e, note in res:
        print(f'[docs{" --strict"*strict}] {n}: ' + (f'nbdev-docs would stop at {e}' if e else 'ok')
              + (f'; NOTE {note}' if note else ''), flush=True)
    if strict: return int(any(e for _, e, _ in res))
    t1 = time.time()
    html = root/'_proc'/'html'   # MyST-NB writes images beside the output folder: keep it inside _proc/, then move it
    sphinx = ['-m', 'sphinx', '-q', '-E', '-b', 'html', '-c', TOOLS/'docs', '-d', root/'_proc'/'doctrees', src, html]
    if subprocess.run([sys.executable, *map(str, sphinx)]).returncode: raise SystemExit('sphinx-build failed')
    shutil.move(html, out)
    for d in ('MathJax.js', 'config/TeX-AMS_CHTML.js', 'jax/input/TeX', 'jax/output/CommonHTML', 'jax/element', 'extensions',
              'fonts/HTML-CSS/TeX/woff'):   # MathJax 2: the config conf.py names, its jax, extensions and fonts
        (out/'_static'/'mathjax'/d).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (MATHJAX/d).is_dir() else shutil.copy)(MATHJAX/d, out/'_static'/'mathjax'/d)
    htmls = {f: f.read_text() for f in out.glob('*.html')}
    ids = {f.name: set(re.findall(r'\bid="([^"]+)"', h)) for f, h in htmls.items()}
    for f, h in htmls.items(): f.write_text(fix_links(h, site_url(cfg), ids))
    (out/'.nojekyll').write_text('')
    print(f'[docs] {len(pages)} pages in {out.relative_to(root)}/ in {time.time()-t0:.1f}s (nbdev {t1-t0:.1f}s, then Sphinx)')
    return 0

if __name__=='__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--root', default=str(TOOLS.parent), help='project root (the folder with pyproject.toml)')
    ap.add_argument('--strict', action='store_true', help="only check that Quarto's `nbdev-docs` would process every notebook")
    a = ap.parse_args()
    sys.exit(build(a.root, a.strict))
