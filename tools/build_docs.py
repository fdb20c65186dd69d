"""Build miniai's docs site into `_docs/` with Sphinx + MyST-NB (`make docs`), offline, then open `_docs/index.html`.

1. nbdev's doc processors (those `nbdev-proc-nbs` runs) process every `nbs/*.ipynb` into `_proc/sphinx/<page>.ipynb`
   (`09_learner.ipynb` -> `learner.ipynb`, so pages keep nbdev's names): exported code hidden, a `show_doc` entry for
   each exported name, run as `nbdev-docs` runs it. Ours on top: `show_doc` adds the docments parameter table and an
   entry per public method with a docstring (`Learner.fit`); `@fc.patch` is named like `@patch`; Quarto cell options
   become MyST-NB tags; links to notebooks and to the published site become links between pages.
2. Sphinx (config: tools/docs/conf.py) renders the saved outputs with the furo theme, a search index and MathJax
   from Debian's `libjs-mathjax` (`make setup` installs it when run as root).

`python tools/build_docs.py --strict` only runs step 1 as `nbdev-docs` would, and names each cell that stops it.
MINIAI_DOCS_ROOT names another project folder to build (the browser test uses it too).
"""
import ast, inspect, os, re, shutil, sys, time, warnings
from pathlib import Path
import nbformat.v4 as v4
from docutils.nodes import make_id
from fastcore.docments import DocmentTbl
from fastcore.nbio import read_nb, write_nb
from nbdev import doclinks
from nbdev.config import get_config, nbpath2html
from nbdev.processors import FilterDefaults, FrontmatterProc, exec_show_docs
from nbdev.showdoc import BasicMarkdownRenderer as R
from sphinx.cmd.build import build_main

ROOT = Path(os.environ.get('MINIAI_DOCS_ROOT') or Path(__file__).resolve().parents[1]).resolve()
TAGS = {'echo: false': 'remove-input', 'output: false': 'remove-output', 'include: false': 'remove-cell',
        'hide': 'remove-cell'}   # Quarto cell options -> MyST-NB cell tags

def notebooks(path):
    "The notebooks in `path` in filename order (as nbdev's sidebar), `index.ipynb` first."
    return sorted(Path(path).glob('[!_.]*.ipynb'), key=lambda p: (p.stem!='index', p.name))

def patch_nbdev():
    "`show_doc` with the docments table and public methods; `@fc.patch`/`@fc.patch_to` named as `@patch` ones."
    decor_id, orig = doclinks.decor_id, R._repr_markdown_
    doclinks.decor_id = lambda d: f.attr if isinstance(f := getattr(d, 'func', d), ast.Attribute) else decor_id(d)
    def _repr_markdown_(self):
        md, cls = orig(self), inspect.isclass(self.sym)
        if cls: md = md.replace('```python\ndef ', '```python\nclass ', 1)
        try: md += '\n\n' + DocmentTbl(self.sym)._repr_markdown_().replace('| NoneType | None |', '|  | None |')
        except (TypeError, ValueError): pass   # `inspect.signature` finds no signature to tabulate (a builtin, say)
        md = md.replace(':NoneType=None', '=None').replace('__main__.', '')
        meths = [(k, v) for k, v in vars(self.sym).items() if cls and k[0]!='_' and inspect.isfunction(v) and v.__doc__]
        return md + ''.join('\n\n' + R(v, name=f'{self.nm}.{k}', title_level=4)._repr_markdown_() for k, v in meths)
    R._repr_markdown_ = _repr_markdown_

def site_url(cfg): return f"{cfg.get('doc_host', '')}{cfg.get('doc_baseurl', '')}".rstrip('/')

def to_myst(nb, src, cfg, pages):
    "Quarto cell options -> MyST-NB tags; links to notebooks -> links to the site (`fix_links` makes them local)."
    site, stems = site_url(cfg), {p.stem: page for p, page in pages}
    nb_link = lambda m: f'](' + site + f'/{stems.get(m.group(1), m.group(1))}.html'
    for c in nb.cells:
        c.pop('has_sd', None)   # nbdev's mark of a show_doc cell and execnb's float timings: not valid nbformat
        c.metadata.pop('execution', None)
        if c.cell_type=='markdown': c.source = re.sub(r'\]\((?:\./)?(\w+)\.ipynb', nb_link, c.source)
        if c.cell_type!='code': continue
        opts = re.findall(r'^#\|\s*(.*?)\s*$', c.source, re.M)
        c.source = re.sub(r'^#\|.*\n?', '', c.source, flags=re.M).strip()
        tags = [*c.metadata.get('tags', []), *(TAGS[o] for o in opts if o in TAGS), *['remove-input'] * (not c.source)]
        c.metadata['tags'] = sorted(set(tags))
        for d in (o.get('data', {}) for o in c.get('outputs', [])):
            if 'text/markdown' in d:   # show_doc: no rules between entries, no Quarto `{target=...}` after a link
                d['text/markdown'] = re.sub(r'(?m)(\]\([^)\s]*\))\{[^}]*\}|^---$', r'\1', ''.join(d['text/markdown']))
            if 'text/html' in d:   # offline: no stylesheets from a CDN (matplotlib's animations link one)
                d['text/html'] = re.sub(r'<link\b[^>]*\bhref="https?://[^>]*>', '', ''.join(d['text/html']))
    path = f'{cfg.nbs_path.name}/{src.name}'
    link = f'Notebook [`{path}`]({cfg.git_url}/blob/{cfg.branch}/{path}): run and change it in Jupyter (`make lab`).'
    toctree = '\n'.join(['```{toctree}', ':hidden:\n', *(pg for _, pg in pages[1:]), '```'])   # the sidebar, prev/next
    if src.stem!='index': nb.cells.insert(1, v4.new_markdown_cell(link))
    else: nb.cells.append(v4.new_markdown_cell(toctree))
    nb.metadata = dict(language_info=dict(name='python', pygments_lexer='ipython3'))   # nbdev keeps no kernel info

def _why(e):
    "Where and why nbdev stopped: its error names the cell, shows its source, then ends with the cell's own error."
    m = re.search(r'in cell (\d+) :\n(.*)', str(e))
    return (f'cell {m[1]} (`{m[2]}`...): ' if m else '') + f'{type(e).__name__}: {e}'.strip().splitlines()[-1]

def proc_one(src, dst, strict, pages):
    "nbdev-process `src` (as `nbdev-docs` does when `strict`) into `dst`, print how it went; False if `strict` failed."
    skip = set() if strict else {FrontmatterProc}   # the title cell stays markdown: Sphinx takes the page title from it
    class Procs(FilterDefaults):
        def base_procs(self): return [p for p in super().base_procs() if p not in skip]
    nb, err = read_nb(src), None
    try: Procs()(nb)
    except Exception as e: err, nb = f'nbdev-docs would stop at {_why(e)}', read_nb(src)
    print(f'[docs{" --strict"*strict}] {src.name}: {err or "ok"}', flush=True)
    if strict: return not err
    if err: skip.add(exec_show_docs); Procs()(nb)   # build the page anyway, without show_doc's output
    to_myst(nb, src, get_config(), pages)
    write_nb(nb, dst)
    return True

def fix_links(html, site, ids):
    "Links to the published site -> relative links; a #fragment that names no element -> the nearest one that exists."
    def sub(m):
        page, _, frag = m[1].partition('#')
        parts = frag.split('.')   # `learner.fit` -> `learner-fit`, or `learner` if `Learner.fit` has no entry
        while parts and make_id('.'.join(parts)) not in ids.get(page, ()): parts.pop()
        return f'href="{page or "index.html"}' + (f'#{make_id(".".join(parts))}"' if parts else '"')
    return re.sub(r'href="' + re.escape(site) + r'/([^"]*)"', sub, html)

def build(strict=False):
    "Process every notebook with nbdev, then render the site with Sphinx; `strict`: only report. Exit status."
    t0, src, html = time.time(), ROOT/'_proc'/'sphinx', ROOT/'_proc'/'html'
    os.chdir(ROOT); sys.path.insert(0, str(ROOT))
    os.environ['IN_TEST'] = '1'   # what nbdev's own driver sets while processing
    warnings.filterwarnings('ignore', message='Found cells containing imports')
    cfg = get_config()
    pages = [(p, nbpath2html(Path(p.name)).stem) for p in notebooks(cfg.nbs_path)]
    if len({pg for _, pg in pages})<len(pages): raise SystemExit(f'two notebooks make one page: {pages}')
    for d in ([] if strict else [src, html, cfg.doc_path]): shutil.rmtree(d, ignore_errors=True)
    src.mkdir(parents=True, exist_ok=True)
    patch_nbdev()
    if not all([proc_one(p, src/f'{pg}.ipynb', strict, pages) for p, pg in pages]): return 1
    if strict: return 0
    sphinx = ['-q', '-E', '-b', 'html', '-c', Path(__file__).parent/'docs', '-d', src.parent/'doctrees', src, html]
    if build_main(list(map(str, sphinx))): raise SystemExit('sphinx-build failed')
    shutil.move(html, cfg.doc_path)   # MyST-NB writes images beside its output folder: that is inside _proc/
    htmls = {f: f.read_text() for f in cfg.doc_path.glob('*.html')}
    ids = {f.name: set(re.findall(r'\bid="([^"]+)"', h)) for f, h in htmls.items()}
    for f, h in htmls.items(): f.write_text(fix_links(h, site_url(cfg), ids))
    print(f'[docs] {len(pages)} pages in {cfg.doc_path.relative_to(ROOT)}/ in {time.time()-t0:.1f}s')
    return 0

if __name__=='__main__': sys.exit(build(strict='--strict' in sys.argv[1:]))
