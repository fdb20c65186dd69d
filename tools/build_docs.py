"""Build miniai's docs site into `_docs/` without Quarto: `make docs`, then open `_docs/index.html`.

1. nbdev's own doc processors (those `nbdev-proc-nbs` runs) turn each `nbs/*.ipynb` into `_proc/*.ipynb`: the title
   cell becomes frontmatter, exported code is hidden, a `show_doc` entry follows every exported name. On top of nbdev:
   - `show_doc` also draws the parameter table from the docments (nbdev 3 shows only the commented signature);
   - public methods with their own docstring (`Learner.fit`) get an entry after their class, and `@fc.patch` methods
     are named `Class.method` as nbdev names `@patch` ones;
   - only the cells `show_doc` needs are run (exports, import-only cells, `show_doc`); nbdev-docs also re-runs every
     cell that contains an import, out of context. `--strict` runs exactly as nbdev-docs would, to check for that.
2. nbconvert's `basic` HTML exporter renders each processed notebook; plots stay embedded PNGs, TeX becomes SVG
   (matplotlib's mathtext: no MathJax, the site works offline), widgets get a static note.
3. A Jinja page (tools/docs_template/) adds the sidebar with every notebook in order, prev/next links, an "on this page"
   list and the CSS; links to `.ipynb` files and to the project's published doc URLs become links to the local pages.

`_proc/` caches steps 1 and 2 per notebook: an unchanged notebook is neither re-processed nor re-rendered (`--force`).
"""
import argparse, ast, html, json, os, re, shutil, sys, time, warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TOOLS = Path(__file__).resolve().parent
TMPL = TOOLS/'docs_template'

# ---------------------------------------------------------------- step 1: nbdev processing (runs in worker processes)
def _patch_showdoc():
    "Make nbdev's default `show_doc` renderer add the docments parameter table, and say `class` for classes."
    import inspect
    from nbdev.showdoc import BasicMarkdownRenderer
    from fastcore.docments import DocmentTbl
    if getattr(BasicMarkdownRenderer, '_miniai_tbl', False): return
    orig = BasicMarkdownRenderer._repr_markdown_
    def _repr_markdown_(self):
        md = orig(self)
        if inspect.isclass(self.sym): md = md.replace('```python\ndef ', '```python\nclass ', 1)
        try: tbl = DocmentTbl(self.sym)._repr_markdown_()
        except Exception as e: tbl = ''; warnings.warn(f'no parameter table for {self.nm}: {e}')
        # fastcore takes the type of an unannotated `x=None` to be NoneType: say nothing rather than something wrong
        md, tbl = md.replace(':NoneType=None', '=None'), tbl.replace('| NoneType | None |', '|  | None |')
        return md + ('\n\n' + tbl if tbl else '')
    BasicMarkdownRenderer._repr_markdown_ = _repr_markdown_
    BasicMarkdownRenderer._miniai_tbl = True

def _method_docs_proc():
    "An nbdev processor adding `show_doc(Cls.meth)` after `show_doc(Cls)` for public methods that have a docstring."
    from nbdev.process import Processor
    from fastcore.nbio import mk_cell
    class add_method_docs(Processor):
        def begin(self):
            cells = self.nb.cells
            shown = {m.group(1) for c in cells if c.cell_type=='code' and c.source
                     for m in re.finditer(r'^show_doc\(([\w.]+)', c.source, re.M)}
            # nbdev names `@patch def f(self:Learner)` as `Learner.f`, but not `@fc.patch`: it then documents `f`, which
            # `fc.patch` left bound to None, and the entry shows `show_doc` itself. Name those the way nbdev names `@patch`.
            patched = _patched_names(cells)
            for c in cells:
                m = re.match(r'show_doc\((\w+)\)$', (c.source or '').strip())
                if getattr(c, 'has_sd', False) and m and m.group(1) in patched: c.source = f'show_doc({patched[m.group(1)]})'
            for i in reversed(range(len(cells))):
                c = cells[i]
                if not getattr(c, 'has_sd', False): continue
                m = re.match(r'show_doc\((\w+)\)$', c.source.strip())
                if not m: continue
                meths = _public_methods(cells, m.group(1))
                new = [mk_cell(f'show_doc({m.group(1)}.{nm}, title_level=4)') for nm in meths if f'{m.group(1)}.{nm}' not in shown]
                for n in new: n.has_sd = True
                cells[i+1:i+1] = new
            for i,c in enumerate(cells): c.idx_ = i
    return add_method_docs

def _patched_names(cells):
    "{name: 'Cls.name'} for exported functions decorated with a dotted `patch`/`patch_to` (`@fc.patch`)."
    res = {}
    for c in cells:
        if c.cell_type!='code' or not c.source or not ({'export','exports'} & set(getattr(c, 'directives_', {}) or {})): continue
        try: tree = ast.parse(re.sub(r'^\s*#\|.*$', '', c.source, flags=re.M))
        except SyntaxError: continue
        for f in tree.body:
            if not isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef)): continue
            for d in f.decorator_list:
                fn = d.func if isinstance(d, ast.Call) else d
                if not isinstance(fn, ast.Attribute): continue
                if fn.attr=='patch' and f.args.args and isinstance(a := f.args.args[0].annotation, ast.Name): res[f.name] = f'{a.id}.{f.name}'
                if fn.attr=='patch_to' and isinstance(d, ast.Call) and d.args and isinstance(d.args[0], ast.Name):
                    res[f.name] = f'{d.args[0].id}.{f.name}'
    return res

def _public_methods(cells, cls):
    "Names of public methods of class `cls` (defined in an exported cell) that have their own docstring, in order."
    for c in cells:
        if c.cell_type!='code' or not c.source or not ({'export','exports'} & set(getattr(c, 'directives_', {}) or {})): continue
        try: tree = ast.parse(re.sub(r'^\s*#\|.*$', '', c.source, flags=re.M))
        except SyntaxError: continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and node.name==cls:
                return [f.name for f in node.body if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                        and not f.name.startswith('_') and ast.get_docstring(f)]
    return []

def proc_one(args):
    "Process one notebook with nbdev's doc processors (plus ours) into `dst`; return (name, seconds, error, notes)."
    src, dst, *rest = args
    src, dst, strict = Path(src), Path(dst), bool(rest and rest[0])
    t = time.time()
    os.environ['IN_TEST'] = '1'  # what nbdev's own driver sets while processing
    warnings.filterwarnings('ignore', message='Found cells containing imports')
    try:
        from fastcore.nbio import read_nb, write_nb
        from nbdev.processors import FilterDefaults, exec_show_docs
        _patch_showdoc()
        extra = _method_docs_proc()
        problems = []
        class exec_show_docs_lean(exec_show_docs):
            """Run what `show_doc` needs: exported cells, cells of nothing but imports, `show_doc` cells.
            nbdev also re-runs every cell that *contains* an import, with none of the notebook's other state: such a
            cell may train a model or fail; we keep its saved outputs instead, and say so."""
            def begin(self):
                if self.nb.has_docs_: super().begin()   # no exports, nothing to document: no need to start a shell
            def __call__(self, cell):
                if cell.cell_type!='code' or not cell.source or not hasattr(self, 'k'): return
                d = set(getattr(cell, 'directives_', {}) or {})
                try: trees = ast.parse(re.sub(r'^\s*(#\|.*|[%!].*)$', '', cell.source, flags=re.M)).body
                except SyntaxError: trees = None
                imports_only = bool(trees) and all(isinstance(t, (ast.Import, ast.ImportFrom)) for t in trees)
                mixed = bool(trees) and not imports_only and any(isinstance(n, (ast.Import, ast.ImportFrom)) for t in trees for n in ast.walk(t))
                if mixed and not d & {'export', 'exports', 'exporti', 'exec_doc'} and not cell.source.lstrip().startswith(('show_doc', '#| echo: false')):
                    problems.append(('mixed', cell.idx_))
                    return
                outs = [dict(o) for o in cell.get('outputs', [])]
                try: super().__call__(cell)
                except Exception as e:
                    cell['outputs'] = outs
                    problems.append(('failed', f'cell {cell.idx_} failed when run for the docs (saved outputs kept): '
                                               + str(e).strip().splitlines()[-1]))
        class Procs(FilterDefaults):
            def base_procs(self):
                ps = super().base_procs()
                i = ps.index(exec_show_docs)
                if not strict: ps[i] = exec_show_docs_lean
                ps.insert(i-1, extra)   # before clean_show_doc and the execution of show_doc cells
                return ps
        nb = read_nb(src)
        Procs()(nb)
        write_nb(nb, dst)
        return src.name, time.time()-t, None, problems
    except Exception as e: return src.name, time.time()-t, f'{type(e).__name__}: {e}', []

# ---------------------------------------------------------------- step 2: render one processed notebook
_re_dir = re.compile(r'^\s*#\|\s*([\w-]+)\s*:?\s*(.*?)\s*$')

def _quarto_opts(cell):
    "Split leading `#| key: value` lines (Quarto cell options written by nbdev) off `cell.source`."
    lines, opts = cell.source.splitlines(), {}
    while lines and (m := _re_dir.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip('"\''); lines.pop(0)
    cell.source = '\n'.join(lines)
    return opts

def _md_text(o): return ''.join(o) if isinstance(o, list) else o

_WIDGET = 'application/vnd.jupyter.widget-view+json'
def _static_widget(out):
    "A widget needs a live kernel: show what it is and where it works instead of a dead (and erroring) placeholder."
    data = out.get('data', {})
    if _WIDGET not in data: return
    desc = html.escape(_md_text(data.get('text/plain', 'a widget')))
    out['data'] = {'text/html': f'<div class="widget-static"><span>interactive widget</span> <code>{desc}</code> '
                                '<em>works when you run the notebook in Jupyter</em></div>', 'text/plain': desc}

def prepare(nb, orig_first_md):
    "Apply the Quarto options nbdev left in `nb` and return its frontmatter; `nb` is changed in place."
    import yaml
    fm, cells = {}, []
    for c in nb.cells:
        if c.cell_type=='raw':
            m = re.match(r'^---\s*\n(.*?)\n---', c.source.strip(), re.S)
            if m: fm.update(yaml.safe_load(m.group(1)) or {}); continue
        if c.cell_type=='markdown' and c.source.strip().startswith('<!-- WARNING: THIS FILE WAS AUTOGENERATED'): continue
        if c.cell_type=='code':
            o = _quarto_opts(c)
            tags = set(c.metadata.get('tags', []))
            if o.get('include')=='false': continue
            if o.get('echo')=='false' or not c.source.strip(): tags.add('remove_input')
            if o.get('output')=='false': tags.add('remove_output')
            if o.get('code-fold'): tags.add('fold')
            if 'show_doc' in c.source or any('text/markdown' in _md_text(x.get('data', {})) for x in c.get('outputs', [])):
                if o.get('output')=='asis': tags.add('api')
            for x in c.get('outputs', []):
                _static_widget(x)
                md = x.get('data', {}).get('text/markdown')
                if md is not None: x['data']['text/markdown'] = re.sub(r'(\]\([^)\s]*\))\{[^}]*\}', r'\1', _md_text(md))
            if not c.source.strip() and not c.get('outputs'): continue
            c.metadata['tags'] = sorted(tags)
        cells.append(c)
    # nbdev turns the whole first markdown cell into frontmatter: keep the paragraph that follows `# title` / `> summary`
    if orig_first_md:
        rest = [l for l in orig_first_md.splitlines() if not re.match(r'^(#\s|>\s)', l)]
        rest = '\n'.join(rest).strip()
        if rest and 'title' in fm:
            import nbformat
            from nbdev.doclinks import NbdevLookup
            cells.insert(0, nbformat.v4.new_markdown_cell(NbdevLookup().linkify(rest)))   # API names linked, as nbdev does
    keep = {'cell_type', 'id', 'metadata', 'source', 'outputs', 'execution_count', 'attachments'}
    for c in cells:
        for k in set(c) - keep: del c[k]   # nbdev's bookkeeping (`has_sd`, `idx_`) is not valid nbformat
        c.metadata.pop('execution', None)  # execnb writes float timings where nbformat wants strings
    nb.cells = cells
    nb.metadata.pop('widgets', None)   # widget state is for a live widget manager (JavaScript from a CDN): not offline
    return fm

def _exporter():
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    c = Config()
    c.TagRemovePreprocessor.enabled = True
    c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    c.TagRemovePreprocessor.remove_all_outputs_tags = {'remove_output'}
    c.HTMLExporter.exclude_anchor_links = False
    c.HTMLExporter.optimistic_validation = True   # validate once, not after every preprocessor
    return HTMLExporter(config=c, template_name='basic')

# ---------------------------------------------------------------- step 3: links, table of contents, page
def fix_links(body, pages, doc_url):
    "Point links at `.ipynb` files and at the published docs (`doc_url`) to the local pages."
    from nbdev.config import nbpath2html
    def sub(m):
        url = html.unescape(m.group(2))
        if doc_url and url.startswith(doc_url): url = url[len(doc_url):].lstrip('/') or 'index.html'
        path, hsh, frag = url.partition('#')
        name = Path(path).name
        if not re.match(r'^[a-z]+:', path) and name.endswith('.ipynb'):
            url = pages.get(name) or nbpath2html(Path(name)).name
            url += hsh + frag
        return f'{m.group(1)}"{html.escape(url)}"'
    return re.sub(r'(\bhref=)"([^"]*)"', sub, body)

def api_anchors(body):
    "nbdev links API names as `page.html#learner.fit`: give every heading a lower-case id as well."
    def sub(m):
        tag, hid, rest = m.group(1), m.group(2), m.group(3)
        low = hid.lower()
        extra = f'<span class="anchor-alias" id="{low}"></span>' if low!=hid else ''
        return f'<{tag} id="{hid}"{rest}>{extra}'
    return re.sub(r'<(h[1-4]) id="([^"]+)"([^>]*)>', sub, body)

def api_table_classes(body):
    "Tag the columns of show_doc's parameter tables (Type, Default, Details) so the CSS can style each."
    def table(m):
        t = m.group(0)
        heads = [re.sub(r'<[^>]+>', '', h).strip().lower() for h in re.findall(r'<th>(.*?)</th>', t, re.S)]
        if 'details' not in heads: return t
        t = t.replace('<table>', '<table class="params">', 1)
        def row(r):
            cells = iter(heads)
            return re.sub(r'<td>', lambda _: f'<td class="col-{next(cells, "x") or "name"}">', r.group(0))
        return re.sub(r'<tr>.*?</tr>', row, t, flags=re.S)
    return re.sub(r'<table>.*?</table>', table, body, flags=re.S)

def mark_source_links(body):
    return re.sub(r'<a href="(https?://[^"]+)">source</a>', r'<a class="source-link" href="\1" target="_blank" rel="noopener">source</a>', body)

_re_skip = re.compile(r'(<(code|pre|script|style|svg)\b.*?</\2>)', re.S)
_re_math = re.compile(r'\$\$(.+?)\$\$|(?<![\\$\w])\$([^\s$](?:[^$]*?[^\s$\\])?)\$(?![\w$])', re.S)

def _tex_compat(tex):
    "Rewrite the bits of LaTeX that matplotlib's mathtext lacks into ones it has."
    tex = re.sub(r'\\texttt\{([^{}]*)\}', lambda m: r'\mathtt{' + m.group(1).replace(' ', r'\ ') + '}', tex)
    tex = re.sub(r'\\tfrac(?![a-z])', r'\\frac', tex)
    tex = re.sub(r'\\[lr]Vert(?![a-z])', r'\\|', tex)
    tex = re.sub(r'\\[bB]igg?[lr]?(?![a-zA-Z])', '', tex)   # sized delimiters: mathtext sizes them itself only with \left/\right
    return tex.replace('\n', ' ')

class MathRenderer:
    "TeX between `$`/`$$` to inline SVG with matplotlib's mathtext (no MathJax: the site must work offline)."
    def __init__(self, cache_dir):
        self.cache_dir, self.failed = Path(cache_dir), []
        self.cache_dir.mkdir(parents=True, exist_ok=True)
    def svg(self, tex, display):
        import hashlib, base64, io
        key = hashlib.sha1(f'{display}{tex}'.encode()).hexdigest()[:16]
        f = self.cache_dir/f'{key}.json'
        if f.exists(): return json.loads(f.read_text())
        import matplotlib
        matplotlib.use('Agg')
        from matplotlib.mathtext import MathTextParser, math_to_image
        from matplotlib.font_manager import FontProperties
        with matplotlib.rc_context({'mathtext.fontset': 'cm', 'svg.hashsalt': 'miniai', 'svg.fonttype': 'path'}):
            prop = FontProperties(size=17 if display else 14)
            _,_,depth,_,_ = MathTextParser('path').parse(f'${tex}$', dpi=72, prop=prop)
            buf = io.BytesIO(); math_to_image(f'${tex}$', buf, prop=prop, dpi=72, format='svg')
        svg = re.sub(r'<metadata>.*?</metadata>', '', buf.getvalue().decode(), flags=re.S)
        res = dict(src='data:image/svg+xml;base64,' + base64.b64encode(svg.encode()).decode(), depth=depth)
        tmp = f.with_suffix(f'.{os.getpid()}.tmp'); tmp.write_text(json.dumps(res)); tmp.replace(f)
        return res
    def sub(self, m):
        display = m.group(1) is not None
        tex = html.unescape(m.group(1) if display else m.group(2)).strip()
        if display: tex = re.sub(r'\\frac(?![a-z])', r'\\dfrac', tex)   # display style, as MathJax would draw it
        try: r = self.svg(_tex_compat(tex), display)
        except Exception as e:
            self.failed.append(tex)
            return f'<code class="tex">{html.escape(tex)}</code>'
        alt = html.escape(tex, quote=True)
        if display: return f'<span class="math display"><img src="{r["src"]}" alt="{alt}"></span>'
        return f'<img class="math" src="{r["src"]}" alt="{alt}" style="vertical-align:-{r["depth"]:.1f}pt">'
    def __call__(self, body):
        return ''.join(part if i%3==1 else (_re_math.sub(self.sub, part) if i%3==0 else '')
                       for i,part in enumerate(_re_skip.split(body)))

def toc(body):
    "The h2/h3 headings of a page body, for the 'On this page' list."
    res = []
    for m in re.finditer(r'<(h[23]) id="([^"]+)"[^>]*>(.*?)</\1>', body, re.S):
        txt = re.sub(r'<[^>]+>', '', m.group(3)).replace('¶', '').strip()
        if txt and m.group(2) not in {r['id'] for r in res}: res.append(dict(level=int(m.group(1)[1]), id=m.group(2), text=html.unescape(txt)))
    return res

def page_one(job):
    "Worker: process (if stale) and render one notebook; return what the page template needs."
    src, dst = Path(job['src']), Path(job['dst'])
    res = dict(src=src.name, href=job['pages'][src.name], num=(re.match(r'^(\d+)_', src.stem) or [None, ''])[1],
               error=None, problems=[], math_failed=[], t_proc=0., t_render=0.)
    if job['stale']:
        _, res['t_proc'], res['error'], res['problems'] = proc_one((src, dst))
        if res['error']: return res
    t = time.time()
    cache = dst.with_suffix('.page.json')   # the rendered page, valid while newer than the processed notebook
    if (not job['stale'] and cache.exists() and cache.stat().st_mtime >= max(dst.stat().st_mtime, job['stamp'])
        and (c := json.loads(cache.read_text())).get('pages')==job['pages']):
        return res | c['res'] | dict(t_render=time.time()-t, cached=True)
    try:
        import nbformat
        nb, orig = nbformat.read(dst, as_version=4), nbformat.read(src, as_version=4)
        fm = prepare(nb, next((c.source for c in orig.cells if c.cell_type=='markdown'), None))
        body, _ = _exporter().from_notebook_node(nb)
        math = MathRenderer(job['math'])
        body = math(api_table_classes(mark_source_links(api_anchors(fix_links(body, job['pages'], job['doc_url'])))))
        res.update(body=body, toc=toc(body), title=fm.get('title', src.stem), description=fm.get('description', ''),
                   math_failed=math.failed)
        cache.write_text(json.dumps(dict(pages=job['pages'], res={k: res[k] for k in ('body', 'toc', 'title', 'description')})))
    except Exception as e: res['error'] = f'rendering: {type(e).__name__}: {e}'
    res['t_render'] = time.time()-t
    return res

def nb_order(p):
    "index first, then by the leading number, then by name."
    m = re.match(r'^(\d+)', p.stem)
    return (p.stem!='index', int(m.group(1)) if m else 10**6, p.name)

def build(root, force=False, workers=2, quiet=False):
    t0 = time.time()
    root = Path(root).resolve()
    os.chdir(root)
    sys.path.insert(0, str(root))
    from nbdev.config import get_config, nbpath2html
    cfg = get_config()
    nbs_path, proc, out = cfg.nbs_path, root/'_proc', cfg.doc_path
    nbs = sorted((p for p in nbs_path.glob('*.ipynb') if not p.name.startswith(('_', '.'))), key=nb_order)
    if not nbs: raise SystemExit(f'no notebooks in {nbs_path}')
    if not (nbs_path/'index.ipynb').exists(): raise SystemExit(f'{nbs_path}/index.ipynb (the home page) is missing')
    log = (lambda *a: None) if quiet else (lambda *a: print('[docs]', *a, flush=True))

    # steps 1 and 2, one notebook per worker: nbdev processing (when `_proc/` is missing or older than the notebook or
    # this script), then rendering
    proc.mkdir(exist_ok=True)
    for p in [*proc.glob('*.ipynb'), *proc.glob('*.page.json')]:
        if not (nbs_path/(p.name.split('.')[0]+'.ipynb')).exists(): p.unlink()
    stamp = max(Path(__file__).stat().st_mtime, cfg.config_file.stat().st_mtime)
    stale = lambda p: force or not (proc/p.name).exists() or (proc/p.name).stat().st_mtime < max(p.stat().st_mtime, stamp)
    pages = {p.name: nbpath2html(Path(p.name)).name for p in nbs}
    doc_url = (cfg.get('doc_host', '') or '') + (cfg.get('doc_baseurl', '') or '')
    jobs = [dict(src=str(p), dst=str(proc/p.name), stale=stale(p), pages=pages, doc_url=doc_url, math=str(proc/'_math'), stamp=stamp)
            for p in nbs]
    sys.path.insert(0, str(TOOLS))
    import build_docs   # the workers need `page_one` from an importable module, not from `__main__`
    if any(j['stale'] for j in jobs) and len(jobs)>1:
        # import the heavy modules once here: forked workers share them instead of each importing its own copy
        import importlib
        for m in ('torch', 'IPython', 'nbconvert', 'nbformat', 'matplotlib.mathtext', 'execnb.shell', 'nbdev.processors'):
            try: importlib.import_module(m)
            except ImportError: pass
    with ProcessPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as ex: site = list(ex.map(build_docs.page_one, jobs))
    for s in site:
        log(f"{s['src']}: " + (f"processed in {s['t_proc']:.1f}s, " if s['t_proc'] else '')
            + (f"rendered in {s['t_render']:.1f}s" if not s.get('cached') else 'unchanged') + (' FAILED' if s['error'] else ''))
        mixed = [str(i) for k,i in s['problems'] if k=='mixed']
        if mixed: log(f'  note: cells {", ".join(mixed)} mix imports with other code: kept as saved '
                      '(nbdev-docs would re-run them alone; the nbdev FAQ says to give imports a cell of their own)')
        for k,pr in s['problems']:
            if k!='mixed': log(f'  note: {pr}')
        for tex in s['math_failed']: log(f'  WARNING math that mathtext cannot draw, shown as TeX: {tex}')
    errs = [f"{s['src']}: {s['error']}" for s in site if s['error']]
    if errs: raise SystemExit('docs build failed (run the notebook top to bottom to see why):\n' + '\n'.join(errs))
    t1 = time.time()

    # API links (`Learner.one_batch` in prose) point at `page.html#learner.one_batch`, but only names with an entry
    # have that anchor: send the others to their class's entry (`#learner`), else to the top of the page
    ids = {s['href']: set(re.findall(r'\bid="([^"]+)"', s['body'])) for s in site}
    def fix_frag(m):
        href, frag = m.group(2), m.group(3)
        if href not in ids or html.unescape(frag) in ids[href]: return m.group(0)
        parts = html.unescape(frag).split('.')
        while parts and '.'.join(parts) not in ids[href]: parts.pop()
        return f'{m.group(1)}"{href}' + (f'#{html.escape(".".join(parts))}' if parts else '') + '"'
    for s in site: s['body'] = re.sub(r'(\bhref=)"([\w.-]*\.html)#([^"]+)"', fix_frag, s['body'])
    # prose names notebooks as `09_learner`: link those to their pages
    stems = {Path(n).stem: h for n,h in pages.items()}
    nb_ref = lambda m: f'<a href="{stems[m.group(1)]}">{m.group(0)}</a>' if m.group(1) in stems else m.group(0)
    for s in site: s['body'] = re.sub(r'(?<!">)<code>(\d+[a-z]?_\w+)</code>', nb_ref, s['body'])

    # step 3: pages
    import jinja2
    from markupsafe import Markup, escape
    from pygments.formatters import HtmlFormatter
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TMPL), autoescape=jinja2.select_autoescape(['html']))
    env.filters['md_inline'] = lambda t: Markup(re.sub(r'`([^`]+)`', r'<code>\1</code>', str(escape(t))))
    page = env.get_template('page.html.j2')
    shutil.copy(TMPL/'site.css', out/'site.css')
    (out/'pygments.css').write_text(HtmlFormatter(style='friendly').get_style_defs('.highlight'))
    (out/'.nojekyll').write_text('')
    meta = dict(name=cfg.get('title') or cfg.lib_name, description=cfg.get('description', ''), repo=cfg.get('git_url', ''),
                branch=cfg.get('branch', 'main'))
    for i,s in enumerate(site):
        prev = site[i-1] if i>0 else None
        nxt = site[i+1] if i+1<len(site) else None
        (out/s['href']).write_text(page.render(page=s, site=site, prev=prev, next=nxt, meta=meta, is_index=s['src']=='index.ipynb'))
    t2 = time.time()
    log(f'{len(site)} pages in {out.relative_to(root)}/ in {t2-t0:.1f}s ({workers} workers)')
    return out/'index.html'

def check_strict(root, workers=2):
    "Process every notebook the way `nbdev-docs` does (into a temporary folder) and report the ones it would stop on."
    import tempfile
    root = Path(root).resolve(); os.chdir(root); sys.path.insert(0, str(root)); sys.path.insert(0, str(TOOLS))
    from nbdev.config import get_config
    import build_docs
    nbs = sorted((p for p in get_config().nbs_path.glob('*.ipynb') if not p.name.startswith(('_', '.'))), key=nb_order)
    with tempfile.TemporaryDirectory() as d, ProcessPoolExecutor(max_workers=workers) as ex:
        res = list(ex.map(build_docs.proc_one, [(p, Path(d)/p.name, True) for p in nbs]))
    for n,dt,e,_ in res:
        src = next((l for l in (e or '').splitlines()[1:] if l.strip() and not l.startswith('#|')), '')
        print(f'[docs --strict] {n}: ' + ('ok' if not e else f"nbdev-docs would stop at the cell starting `{src[:70]}`: "
              f"{e.strip().splitlines()[-1]}"), flush=True)
    return int(any(e for _,_,e,_ in res))

if __name__=='__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--root', default=str(TOOLS.parent), help='project root (the folder with pyproject.toml)')
    ap.add_argument('--force', action='store_true', help='re-process every notebook (ignore the _proc/ cache)')
    ap.add_argument('--strict', action='store_true',
                    help="run cells for show_doc exactly as nbdev-docs does (every cell with an import) and stop at a failing one: "
                         "tells whether `nbdev-docs` would get through on a machine with Quarto")
    ap.add_argument('--workers', type=int, default=min(2, os.cpu_count() or 1), help='notebooks processed in parallel')
    a = ap.parse_args()
    if a.strict: sys.exit(check_strict(a.root, workers=a.workers))
    build(a.root, force=a.force, workers=a.workers)
