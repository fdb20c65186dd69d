# Sphinx configuration of the docs site: tools/build_docs.py feeds it the notebooks as nbdev processed them.
import os
from nbdev.config import get_config

project = html_title = get_config().title   # build_docs.py runs Sphinx in the project folder
extensions = ['myst_nb', 'sphinx.ext.githubpages']   # githubpages: a `.nojekyll`, so GitHub Pages serves `_static/`
myst_enable_extensions = ['dollarmath', 'amsmath']
nb_execution_mode = 'off'               # the notebooks are committed with their outputs: render those
nb_render_markdown_format = 'gfm'       # show_doc's output is Markdown with tables
nb_ipywidgets_js = {}                   # no widget JavaScript from a CDN: the site works offline
nb_mime_priority_overrides = [('html', 'application/vnd.jupyter.widget-view+json', None)]   # a widget shows its text
# MathJax 2 from Debian's libjs-mathjax (`make setup` installs it as root), copied into _static/ (html_static_path)
MATHJAX = os.environ.get('MINIAI_MATHJAX', '/usr/share/javascript/mathjax')
assert os.path.exists(f'{MATHJAX}/MathJax.js'), f'no {MATHJAX}: `apt-get install libjs-mathjax` or set MINIAI_MATHJAX'
mathjax_path = 'MathJax.js?config=TeX-AMS_CHTML'
# MyST-NB marks pages `tex2jax_ignore` and the math itself `math`: MathJax 2 typesets what MyST already found
mathjax2_config = {'tex2jax': {'processClass': 'math|output_area', 'ignoreClass': 'tex2jax_ignore|mathjax_ignore'}}
html_theme = 'furo'
html_favicon = 'static/favicon.svg'
html_static_path = ['static', MATHJAX]
html_css_files = ['miniai.css']
html_copy_source = html_show_sourcelink = html_show_copyright = False
# of MathJax (in html_static_path) only the one config, TeX input, CommonHTML output and its woff fonts are used
exclude_patterns = ['./unpacked', './test', './localization', 'config/[!T]*', 'config/*-full.js', 'jax/input/[!T]*',
                    'jax/output/[!C]*', 'fonts/HTML-CSS/STIX-Web', 'fonts/HTML-CSS/TeX/[!w]*']
suppress_warnings = ['mystnb.unknown_mime_type', 'myst.header', 'misc.highlighting_failure']
