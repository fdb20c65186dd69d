# Sphinx configuration of the docs site; tools/build_docs.py feeds it the notebooks as nbdev processed them (`make docs`).
from pathlib import Path
from nbdev.config import get_config
_nbdev = get_config(Path(__file__).parents[2])

project = html_title = _nbdev['title']
extensions = ['myst_nb']
myst_enable_extensions = ['dollarmath', 'amsmath']
nb_execution_mode = 'off'               # the notebooks are committed with their outputs: render those
nb_render_markdown_format = 'gfm'       # show_doc's output is Markdown with tables
nb_ipywidgets_js = {}                   # no widget JavaScript from a CDN: the site works offline
nb_mime_priority_overrides = [('html', 'application/vnd.jupyter.widget-view+json', None)]   # a widget shows its text
mathjax_path = 'mathjax/MathJax.js?config=TeX-AMS_CHTML'   # MathJax 2, copied into _static/ from Debian's libjs-mathjax
# MyST-NB marks pages `tex2jax_ignore` and the math itself `math`: tell MathJax 2 which to typeset (MyST already found it)
mathjax2_config = {'tex2jax': {'processClass': 'math|output_area', 'ignoreClass': 'tex2jax_ignore|mathjax_ignore'}}
html_theme = 'furo'
html_favicon = str(Path(__file__).parent/'static'/'favicon.svg')
html_static_path = [str(Path(__file__).parent/'static')]
html_css_files = ['miniai.css']
html_copy_source = html_show_sourcelink = html_show_copyright = False
html_theme_options = dict(top_of_page_buttons=[])   # each page links its notebook itself (furo's would guess wrong paths)
exclude_patterns = ['**.ipynb_checkpoints']
suppress_warnings = ['mystnb.unknown_mime_type', 'myst.header', 'misc.highlighting_failure']
