"""The docs site in a real browser: build it with tools/build_docs.py, serve `_docs/` on a local port, open it in
headless Chromium (Debian's `chromium`, driven by Playwright) and check what a learner would see.

Screenshots go to `screenshots/` (git-ignored): docs_index.png, docs_learner.png, docs_learner_fit.png.
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
    from build_docs import nb_order
    return sorted((p for p in NBS.glob('*.ipynb') if not p.name.startswith(('_', '.'))), key=nb_order)

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

@pytest.fixture(scope='session')
def site():
    "Build the site, serve it on a free local port, yield its base URL."
    t = time.time()
    r = subprocess.run([sys.executable, str(TOOLS/'build_docs.py'), '--root', str(ROOT)], capture_output=True, text=True, timeout=600)
    assert r.returncode==0, f'docs build failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}'
    print(f'\n[docs] build {time.time()-t:.1f}s: {r.stdout.strip().splitlines()[-1]}')
    handler = functools.partial(QuietHandler, directory=str(DOCS))
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    th = threading.Thread(target=srv.serve_forever, daemon=True); th.start()
    yield f'http://127.0.0.1:{srv.server_address[1]}/'
    srv.shutdown(); srv.server_close()

class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

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

COLLECT = """() => ({
  title: document.querySelector('h1.title')?.innerText ?? null,
  visible_hrefs: [...document.querySelectorAll('a[href]')].filter(e => e.offsetParent !== null).map(e => e.getAttribute('href')),
  sidebar: [...document.querySelectorAll('.nb-list a')].map(e => [e.getAttribute('href'), e.innerText]),
  plots: [...document.querySelectorAll('.output_png img, .output_jpeg img')].map(e => [e.complete, e.naturalWidth]),
  refs: [...document.querySelectorAll('a[href], link[href], img[src], script[src]')].map(e => e.href || e.src),
})"""

@pytest.fixture(scope='session')
def pages(site, browser_ctx):
    "Open every page once; collect what the tests check, and screenshot the index."
    res, t = {}, time.time()
    for nb in notebooks():
        with Visit(browser_ctx, site+page_name(nb)) as v:
            res[nb.name] = v.page.evaluate(COLLECT) | dict(errors=v.errors, url=site+page_name(nb))
            if nb.name=='index.ipynb':
                SHOTS.mkdir(exist_ok=True)
                v.page.screenshot(path=str(SHOTS/'docs_index.png'))
    print(f'\n[docs] {len(res)} pages opened in Chromium in {time.time()-t:.1f}s')
    return res

def test_index_lists_every_notebook(pages):
    nbs = notebooks()
    assert 'index.ipynb' in pages, 'nbs/index.ipynb (the home page) is missing'
    idx = pages['index.ipynb']
    missing = [p.name for p in nbs if page_name(p) not in idx['visible_hrefs']]
    assert not missing, f'the index page has no visible link to: {missing}'
    # the sidebar lists them in numeric order, each with its title
    assert [h for h,_ in idx['sidebar']]==[page_name(p) for p in nbs], f'sidebar order {idx["sidebar"]}'
    for (h,txt),p in zip(idx['sidebar'], nbs):
        if nb_title(p): assert nb_title(p) in txt, f'sidebar entry for {p.name} reads {txt!r}, not its title {nb_title(p)!r}'

def test_pages_show_title_and_plots(pages):
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

def test_no_console_errors(pages):
    errs = {n: p['errors'] for n,p in pages.items() if p['errors']}
    assert not errs, f'console errors, page errors or failed requests: {errs}'

def _api_page(name):
    "The built page that holds the API entry `name` (an element with that id)."
    for f in sorted(DOCS.glob('*.html')):
        if f'id="{name}"' in f.read_text(): return f.name

def _params(mod, name):
    "Parameter names of `name` in `mod`, from the code itself (so the check follows the notebook)."
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    obj = importlib.import_module(mod)
    for part in name.split('.'): obj = getattr(obj, part)
    return [n for n in inspect.signature(obj).parameters if n!='self']

@pytest.mark.parametrize('mod,name,nb', API, ids=[a[1] for a in API])
def test_api_entry_shows_parameters(site, browser_ctx, mod, name, nb):
    page = _api_page(name)
    assert page, (f'no API entry for `{name}` on the docs site: it comes from {nb} (module {mod}); '
                  f'pages built: {sorted(f.name for f in DOCS.glob("*.html"))}')
    params = _params(mod, name)
    with Visit(browser_ctx, site+page) as v:
        entry = v.page.locator(f'.celltag_api:has([id="{name}"])').first
        assert entry.is_visible(), f'{page}: the `{name}` entry is not visible'
        sig = entry.locator('.highlight').first.inner_text()
        rows = entry.locator('table tbody tr td:first-child').all_inner_texts()
        missing = [n for n in params if n not in rows or n not in sig]
        assert not missing, f'{page}: `{name}` entry lacks parameters {missing} (table rows {rows})'
        if name=='Learner.fit':
            SHOTS.mkdir(exist_ok=True)
            entry.scroll_into_view_if_needed()
            v.page.evaluate('window.scrollBy(0, -80)')
            v.page.screenshot(path=str(SHOTS/'docs_learner_fit.png'))
            v.page.evaluate('window.scrollTo(0, 0)')
            v.page.screenshot(path=str(SHOTS/'docs_learner.png'))
        assert not v.errors, v.errors

def _ids(path, cache={}):
    if path not in cache: cache[path] = {html.unescape(i) for i in re.findall(r'\bid="([^"]+)"', path.read_text())}
    return cache[path]

def test_no_broken_links(site, pages):
    "Every local link, image and stylesheet answers 200, and every #fragment names an element of its page."
    broken, checked = [], {}
    for name, got in pages.items():
        for ref in got['refs']:
            if not ref.startswith(site): continue   # external (GitHub source links) and data: images
            target, _, frag = ref.partition('#')
            if target not in checked:
                try: checked[target] = urllib.request.urlopen(target, timeout=10).status
                except Exception as e: checked[target] = str(e)
            if checked[target]!=200: broken.append(f'{got["url"]} -> {ref} ({checked[target]})'); continue
            if frag and target.endswith('.html'):
                f = DOCS/unquote(urlparse(target).path).lstrip('/')
                # browsers try the fragment as written, then percent-decoded (nbconvert writes ids percent-encoded)
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

def test_glue_rewrites_links_and_math():
    "The few transformations build_docs adds on top of nbdev and nbconvert."
    sys.path.insert(0, str(TOOLS))
    import build_docs as bd
    pages = {'09_learner.ipynb': 'learner.html'}
    body = ('<a href="09_learner.ipynb#Callbacks">a</a><a href="https://x.io/miniai/learner.html#learner.fit">b</a>'
            '<a href="12_annealing.ipynb">c</a><a href="https://pytorch.org/x.ipynb">d</a>')
    out = bd.fix_links(body, pages, 'https://x.io/miniai')
    assert re.findall(r'href="([^"]+)"', out)==['learner.html#Callbacks', 'learner.html#learner.fit', 'annealing.html',
                                                'https://pytorch.org/x.ipynb'], out
    assert bd._tex_compat(r'\texttt{a b}\Big(\tfrac12\Big)')==r'\mathtt{a\ b}(\frac12)'
    with tempfile.TemporaryDirectory() as d:
        m = bd.MathRenderer(d)
        got = m('<p>cost $x^2$ and <code>$HOME</code> and $$\\frac{a}{b}$$ and $\\badmacro{x}$</p>')
    assert got.count('<img class="math"')==1 and got.count('class="math display"')==1, got[:300]
    assert '<code>$HOME</code>' in got and '<code class="tex">\\badmacro{x}</code>' in got and m.failed==['\\badmacro{x}']

def test_nbdev_docs_would_process_every_notebook():
    "Quarto's `nbdev-docs` runs every cell that holds an import, out of context: none may fail (`build_docs.py --strict`)"
    r = subprocess.run([sys.executable, str(TOOLS/'build_docs.py'), '--root', str(ROOT), '--strict'],
                       capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert out.count(': ok') == len(notebooks()), out[-4000:]
