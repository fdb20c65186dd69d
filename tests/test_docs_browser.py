"""The docs site in a real browser: build it with tools/build_docs.py (Sphinx + MyST-NB), serve `_docs/` on a local
port, open every page in one headless Chromium (Debian's `chromium`, driven by Playwright) and check what a learner
would see: titles, plots, progress tables, math, API parameter tables, prev/next, links, search, no console error.

Screenshots go to `screenshots/` (git-ignored): docs_index.png, docs_learner.png, docs_learner_fit.png, docs_search.png.
Set MINIAI_DOCS_ROOT to check another project folder (the test then imports its modules from there).
"""
import functools, html, http.server, importlib, inspect, json, os, re, shutil, subprocess, sys, tempfile, threading, time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse, unquote

import pytest

ROOT = Path(os.environ.get('MINIAI_DOCS_ROOT') or Path(__file__).resolve().parent.parent).resolve()
TOOLS = Path(__file__).resolve().parent.parent/'tools'
NBS, DOCS, SHOTS = ROOT/'nbs', ROOT/'_docs', ROOT/'screenshots'
# Debian's chromium; MINIAI_CHROMIUM may name another Chromium build
CHROMIUM = os.environ.get('MINIAI_CHROMIUM') or shutil.which('chromium') or shutil.which('chromium-browser') or '/usr/bin/chromium'
# flags for a machine without network (from the docs issue); Playwright adds --headless and the user data dir
FLAGS = ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync']
VIEWPORT = dict(width=1366, height=800)  # a laptop screen
# API entries a learner must be able to read, with the module that defines them: their parameters come from the code
API = [('miniai.learner', 'Learner.fit', 'nbs/09_learner.ipynb'), ('miniai.datasets', 'show_images', 'nbs/05_datasets.ipynb')]

def notebooks():
    sys.path.insert(0, str(TOOLS))
    from build_docs import notebooks
    return notebooks(NBS)

def page_name(nb):
    from nbdev.config import nbpath2html
    return nbpath2html(Path(nb.name)).name

def nb_title(nb):
    "The `# Title` of a notebook's first markdown cell."
    cells = json.loads(nb.read_text())['cells']
    src = next((''.join(c['source']) for c in cells if c['cell_type']=='markdown'), '')
    m = re.search(r'^#\s+(.+?)\s*$', src, re.M)
    return m.group(1).replace('`', '') if m else None   # as rendered: `code` in a title shows without backticks

def has_plot(nb):
    "Does `nb` have a plot output in a cell the docs show (not `#| hide`, `#| export`, `#| include: false`, `#| output: false`)?"
    def shown(c):
        src = ''.join(c['source'])
        return not re.search(r'^\s*#\|\s*(hide|export|exporti|include:\s*false|output:\s*false)\b', src, re.M)
    return any('image/png' in o.get('data', {}) for c in json.loads(nb.read_text())['cells'] if c['cell_type']=='code' and shown(c)
               for o in c.get('outputs', []))

def has_html_table(nb):
    "Does `nb` have an HTML table output (fastprogress's progress table) in a cell that is not hidden?"
    return any('<table' in ''.join(o.get('data', {}).get('text/html', '')) for c in json.loads(nb.read_text())['cells']
               if c['cell_type']=='code' and not re.search(r'^\s*#\|\s*(hide|include:\s*false|output:\s*false)', ''.join(c['source']), re.M)
               for o in c.get('outputs', []))

def has_math(nb):
    "Does a markdown cell of `nb` hold `$...$` or `$$...$$` math?"
    prose = lambda c: re.sub(r'```.*?```|`[^`]*`', '', ''.join(c['source']), flags=re.S)   # code is not math
    return any(re.search(r'\$\$.+?\$\$|(?<![\\$])\$[^\s$][^$]*\$', prose(c), re.S)
               for c in json.loads(nb.read_text())['cells'] if c['cell_type']=='markdown')

@pytest.fixture(scope='session')
def site():
    "Build the site, serve it on a free local port, yield its base URL."
    t = time.time()
    r = subprocess.run([sys.executable, str(TOOLS/'build_docs.py')], capture_output=True, text=True, timeout=600)
    assert r.returncode==0, f'docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}'
    print(f'\n[docs] build {time.time()-t:.1f}s: {r.stdout.strip().splitlines()[-1]}')
    handler = functools.partial(QuietHandler, directory=str(DOCS))
    srv = QuietServer(('127.0.0.1', 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

class QuietServer(http.server.ThreadingHTTPServer):
    "A browser that leaves a page closes its connections mid-transfer: that is no error."
    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionError): super().handle_error(request, client_address)

@pytest.fixture(scope='session')
def browser_ctx(site):
    if not Path(CHROMIUM).exists():
        pytest.fail(f'Chromium is not installed ({CHROMIUM} missing), so the docs cannot be checked in a browser. '
                    'Install Debian\'s package: `apt-get install -y chromium` (`make test` does this when run as root).')
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory(prefix='miniai-chromium-') as udd, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(udd, executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                   viewport=VIEWPORT, offline=False)
        ctx.set_default_timeout(20_000)
        yield ctx
        ctx.close()

class Visit:
    "A page opened in the browser, with every console error, page error and failed request seen while loading it."
    def __init__(self, ctx, url):
        self.errors, self.page = [], ctx.new_page()
        pg = self.page
        pg.on('console', lambda m: m.type=='error' and self.errors.append(f'console: {m.text}'))
        pg.on('pageerror', lambda e: self.errors.append(f'page error: {e}'))
        pg.on('requestfailed', lambda r: self.errors.append(f'request failed: {r.url[:120]} ({r.failure})'))
        pg.on('response', lambda r: r.status>=400 and self.errors.append(f'HTTP {r.status}: {r.url}'))
        resp = pg.goto(url, wait_until='load')
        assert resp and resp.status==200, f'{url} answered {resp and resp.status}'
    def __enter__(self): return self
    def __exit__(self, *a): self.page.close()

COLLECT = """async () => {
  const h1 = document.querySelector('article h1'), t = h1 && h1.cloneNode(true);
  if (t) t.querySelectorAll('.headerlink').forEach(e => e.remove());
  // MathJax typesets after `load`: wait for the end of its first pass
  if (window.MathJax && MathJax.Hub) await new Promise(r => MathJax.Hub.Register.StartupHook('End', r));
  const math = [...document.querySelectorAll('article .math')];
  return {
    title: t ? t.textContent.trim() : null,
    visible_hrefs: [...document.querySelectorAll('a[href]')].filter(e => e.offsetParent !== null).map(e => e.getAttribute('href')),
    sidebar: [...document.querySelectorAll('.sidebar-tree li.toctree-l1 > a')].map(e => [e.getAttribute('href'), e.innerText]),
    prev: document.querySelector('.related-pages a.prev-page')?.getAttribute('href') ?? null,
    next: document.querySelector('.related-pages a.next-page')?.getAttribute('href') ?? null,
    plots: [...document.querySelectorAll('.cell_output img')].map(e => [e.complete, e.naturalWidth]),
    html_tables: document.querySelectorAll('.cell_output .text_html table').length,
    math: [math.length, math.filter(e => e.querySelector('.mjx-chtml')).length, document.querySelectorAll('.mjx-merror, .MathJax_Error').length],
    refs: [...document.querySelectorAll('a[href], link[href], img[src], script[src]')].map(e => e.href || e.src),
  }}"""

@pytest.fixture(scope='session')
def pages(site, browser_ctx):
    "Open every page once, in one browser; collect what the tests check, and screenshot the index."
    res, t = {}, time.time()
    for nb in notebooks():
        with Visit(browser_ctx, site+page_name(nb)) as v:
            res[nb.name] = v.page.evaluate(COLLECT) | dict(errors=v.errors, url=site+page_name(nb))
            if nb.name=='index.ipynb':
                SHOTS.mkdir(exist_ok=True)
                v.page.screenshot(path=str(SHOTS/'docs_index.png'))
    print(f'\n[docs] {len(res)} pages opened in Chromium in {time.time()-t:.1f}s')
    return res

def test_index_lists_every_notebook_in_order(pages):
    nbs = notebooks()
    assert nbs and nbs[0].name=='index.ipynb', 'nbs/index.ipynb (the home page) is missing'
    idx, names = pages['index.ipynb'], [page_name(p) for p in nbs]
    missing = [p.name for p in nbs[1:] if page_name(p) not in idx['visible_hrefs']]
    assert not missing, f'the index page has no visible link to: {missing}'
    # the sidebar lists the notebooks in filename order, each with its title
    assert [h for h,_ in idx['sidebar']]==names[1:], f'sidebar order {idx["sidebar"]}'
    for (h,txt),p in zip(idx['sidebar'], nbs[1:]):
        if nb_title(p): assert nb_title(p) in txt, f'sidebar entry for {p.name} reads {txt!r}, not its title {nb_title(p)!r}'
    # previous/next links walk the same order
    for i,p in enumerate(nbs):
        got = pages[p.name]
        assert (got['prev'], got['next'])==(names[i-1] if i else None, names[i+1] if i+1<len(names) else None), (p.name, got['prev'], got['next'])

def test_pages_show_title_plots_tables_and_math(pages):
    nbs = [p for p in notebooks() if p.name!='index.ipynb']
    assert nbs, 'no numbered notebooks in nbs/'
    with_plots = [p for p in nbs if has_plot(p)]
    assert with_plots, 'no notebook has a plot output (image/png), so no page can show one'
    for p in nbs:
        got = pages[p.name]
        assert nb_title(p) and (got['title'] or '').strip()==nb_title(p), f'{page_name(p)}: title {got["title"]!r}, notebook says {nb_title(p)!r}'
        if p in with_plots:
            assert got['plots'], f'{page_name(p)}: {p.name} has plot outputs but the page shows no plot image'
            bad = [i for i,(done,w) in enumerate(got['plots']) if not (done and w>0)]
            assert not bad, f'{page_name(p)}: plot images {bad} of {len(got["plots"])} did not load (naturalWidth 0)'
        if has_html_table(p): assert got['html_tables'], f'{page_name(p)}: {p.name} has HTML tables (progress bars) the page lacks'
        n, typeset, errs = got['math']
        if has_math(p): assert n and typeset==n and not errs, f'{page_name(p)}: {n} formulas, {typeset} typeset by MathJax, {errs} errors'
    assert any(pages[p.name]['math'][0] for p in nbs), 'no page shows math'

def test_no_console_errors(pages):
    errs = {n: p['errors'] for n,p in pages.items() if p['errors']}
    assert not errs, f'console errors, page errors or failed requests: {errs}'

def _api_page(name):
    "The built page that holds the API entry `name` (a heading with its docutils id)."
    from docutils.nodes import make_id
    for f in sorted(DOCS.glob('*.html')):
        if f'id="{make_id(name)}"' in f.read_text(): return f.name

def _params(mod, name):
    "Parameter names of `name` in `mod`, from the code itself (so the check follows the notebook)."
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    obj = importlib.import_module(mod)
    for part in name.split('.'): obj = getattr(obj, part)
    return [n for n in inspect.signature(obj).parameters if n!='self']

ENTRY = """id => {   // an API entry: its heading, then the signature and the parameter table up to the next heading
  const h = document.getElementById(id), sig = [], rows = [];
  for (let e = h.nextElementSibling; e && !e.matches('.rubric, h1, h2, h3, h4, section'); e = e.nextElementSibling) {
    if (!sig.length && e.matches('div[class*=highlight]')) sig.push(e.innerText);
    if (!rows.length && e.querySelector('table')) rows.push(...[...e.querySelectorAll('tbody tr td:first-child')].map(td => td.innerText.trim()));
  }
  return {visible: h.offsetParent !== null, sig: sig.join(''), rows};
}"""

@pytest.mark.parametrize('mod,name,nb', API, ids=[a[1] for a in API])
def test_api_entry_shows_parameters(site, browser_ctx, mod, name, nb):
    from docutils.nodes import make_id
    page = _api_page(name)
    assert page, (f'no API entry for `{name}` on the docs site: it comes from {nb} (module {mod}); '
                  f'pages built: {sorted(f.name for f in DOCS.glob("*.html"))}')
    params = _params(mod, name)
    with Visit(browser_ctx, site+page) as v:
        got = v.page.evaluate(ENTRY, make_id(name))
        assert got['visible'], f'{page}: the `{name}` entry is not visible'
        missing = [n for n in params if n not in got['rows'] or n not in got['sig']]
        assert not missing, f'{page}: `{name}` entry lacks parameters {missing} (table rows {got["rows"]}, signature {got["sig"]!r})'
        if name=='Learner.fit':
            SHOTS.mkdir(exist_ok=True)
            v.page.evaluate(f'document.getElementById("{make_id(name)}").scrollIntoView({{behavior: "instant"}}); '
                            'window.scrollBy({top: -80, behavior: "instant"})')   # furo scrolls smoothly: no waiting
            v.page.screenshot(path=str(SHOTS/'docs_learner_fit.png'))
            v.page.evaluate('window.scrollTo({top: 0, behavior: "instant"})')
            v.page.screenshot(path=str(SHOTS/'docs_learner.png'))
        assert not v.errors, v.errors

def test_search_finds_an_api_name(site, browser_ctx):
    "Typing `HooksCallback` in the search box lists the page that defines it (Sphinx's search index, offline)."
    target = next(page_name(p) for p in notebooks() if p.stem.endswith('_activations'))
    with Visit(browser_ctx, site+'index.html') as v:
        box = v.page.locator('input.sidebar-search')
        box.fill('HooksCallback'); box.press('Enter')
        v.page.wait_for_selector(f'ul.search li a[href^="{target}"]')
        hits = v.page.eval_on_selector_all('ul.search li a', 'es => es.map(e => e.getAttribute("href"))')
        SHOTS.mkdir(exist_ok=True)
        v.page.screenshot(path=str(SHOTS/'docs_search.png'))
        assert hits and hits[0].startswith(target), f'search for HooksCallback lists {hits}, {target} not first'
        assert not v.errors, v.errors

def _ids(path, cache={}):
    if path not in cache: cache[path] = {html.unescape(i) for i in re.findall(r'\bid="([^"]+)"', path.read_text())}
    return cache[path]

def test_no_broken_links(site, pages):
    "Every local link, image, script and stylesheet answers 200, and every #fragment names an element of its page."
    broken, checked = [], {}
    for name, got in pages.items():
        for ref in got['refs']:
            if not ref.startswith(site): continue   # external (GitHub source links) and data: images
            target, _, frag = ref.partition('#')
            if target not in checked:
                try: checked[target] = urllib.request.urlopen(target, timeout=10).status
                except Exception as e: checked[target] = str(e)
            if checked[target]!=200: broken.append(f'{got["url"]} -> {ref} ({checked[target]})'); continue
            if frag and urlparse(target).path.endswith('.html'):
                f = DOCS/unquote(urlparse(target).path).lstrip('/')
                if not {frag, unquote(frag)} & _ids(f): broken.append(f'{got["url"]} -> {ref} (no element with id {unquote(frag)!r})')
    assert not broken, 'broken links:\n' + '\n'.join(broken)
    assert len(checked)>=len(pages), f'only {len(checked)} local targets checked'

def test_quarto_config_is_valid_for_nbdev_docs():
    "The Quarto files that `nbdev-docs` reads on machines with Quarto: valid YAML, with the keys nbdev relies on."
    import yaml
    from nbdev.config import get_config
    q = yaml.safe_load((ROOT/'nbs/_quarto.yml').read_text())
    assert q['project']['type']=='website' and {'nbdev.yml', 'sidebar.yml'} <= set(q['metadata-files']), q
    n = yaml.safe_load((ROOT/'nbs/nbdev.yml').read_text())
    cfg = get_config(ROOT)
    assert n['project']['output-dir']==cfg.doc_path.name, f"nbdev.yml writes to {n['project']['output-dir']}, pyproject says {cfg.doc_path.name}"
    assert n['website']['title']==cfg.title and n['website']['repo-url']==cfg.git_url, n['website']
    s = yaml.safe_load((ROOT/'nbs/sidebar.yml').read_text())
    assert 'index.ipynb' in s['website']['sidebar']['contents'], s

def test_glue_maps_quarto_options_and_links():
    "What build_docs adds between nbdev and MyST-NB: Quarto cell options to tags, links to the site's pages."
    import nbformat.v4 as v4
    from nbdev.config import get_config
    sys.path.insert(0, str(TOOLS))
    import build_docs as bd
    cfg = get_config(ROOT); site = bd.site_url(cfg)
    md = '---\n\n[source](https://github.com/x/y.py#L3){target="_blank" style="float:right"}\n\n### f\n'
    nb = v4.new_notebook(cells=[v4.new_markdown_cell('# T\n\n> s'), v4.new_code_cell('#| echo: false\n#| output: asis\nshow_doc(f)',
        outputs=[v4.new_output('display_data', {'text/markdown': md})]), v4.new_code_cell('#| hide\nx = 1'),
        v4.new_code_cell('#| include: false\ny = 2'), v4.new_code_cell('#|output: false\nz = 3'),
        v4.new_markdown_cell('see [09](09_learner.ipynb#callbacks) and [sgd](./12_accel_sgd.ipynb)')])
    pages = [(Path('index.ipynb'), 'index'), (Path('09_learner.ipynb'), 'learner'), (Path('12_accel_sgd.ipynb'), 'accel_sgd')]
    bd.to_myst(nb, Path('nbs/10_x.ipynb'), cfg, pages)
    code = [c for c in nb.cells if c.cell_type=='code']
    assert [c.metadata.tags for c in code]==[['remove-input'], ['remove-cell'], ['remove-cell'], ['remove-output']], [c.metadata for c in code]
    assert [c.source for c in code]==['show_doc(f)', 'x = 1', 'y = 2', 'z = 3']
    assert code[0].outputs[0].data['text/markdown'].strip()=='[source](https://github.com/x/y.py#L3)\n\n### f'
    assert nb.cells[1].source.startswith('Notebook [`nbs/10_x.ipynb`](') and f'{cfg.git_url}/blob/' in nb.cells[1].source
    assert nb.cells[-1].source==f'see [09]({site}/learner.html#callbacks) and [sgd]({site}/accel_sgd.html)'
    idx = v4.new_notebook(cells=[v4.new_markdown_cell('# miniai')]); bd.to_myst(idx, Path('nbs/index.ipynb'), cfg, pages)
    assert idx.cells[-1].source=='```{toctree}\n:hidden:\n\nlearner\naccel_sgd\n```'
    ids = {'learner.html': {'learner', 'learner-fit', 'callbacks'}}
    h = ''.join(f'<a href="{u}">x</a>' for u in [f'{site}/learner.html#learner.fit', f'{site}/learner.html#Learner.one_batch',
                                                   f'{site}/learner.html#nothing', f'{site}/', 'https://pytorch.org/x.html#y'])
    assert re.findall(r'href="([^"]+)"', bd.fix_links(h, site, ids))==['learner.html#learner-fit', 'learner.html#learner', 'learner.html',
                                                                      'index.html', 'https://pytorch.org/x.html#y']

def test_nbdev_docs_would_process_every_notebook():
    "Quarto's `nbdev-docs` runs every cell that holds an import, out of context: none may fail (`build_docs.py --strict`)"
    r = subprocess.run([sys.executable, str(TOOLS/'build_docs.py'), '--strict'],
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert out.count(': ok') == len(notebooks()), out[-4000:]
