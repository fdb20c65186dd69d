"""Write README.md from nbs/index.ipynb without Quarto (`nbdev-readme` needs Quarto).
`--check` exits 1 (and says what to run) when README.md is not what index.ipynb generates."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parent.parent
header = '<!-- Generated from nbs/index.ipynb by tools/make_readme.py (`make readme`): edit the notebook, not this file. -->\n\n'

def cell_src(c): return ''.join(c['source']) if isinstance(c['source'], list) else c['source']

def render(nb_path=root/'nbs'/'index.ipynb'):
    "Markdown for the README: markdown cells as they are, code cells fenced, hidden cells and directives dropped"
    parts = []
    for c in json.loads(Path(nb_path).read_text())['cells']:
        src = cell_src(c)
        lines = src.splitlines()
        directives = [l for l in lines if l.startswith('#|')]
        if any(d.split()[1:2] in (['hide'], ['exporti']) for d in directives if len(d.split())>1): continue
        body = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
        if not body: continue
        parts.append(body if c['cell_type'] == 'markdown' else f'```python\n{body}\n```')
    return header + '\n\n'.join(parts) + '\n'

if __name__ == '__main__':
    txt, readme = render(), root/'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text() != txt:
            print('README.md is out of date with nbs/index.ipynb: run `make readme` (or `python tools/make_readme.py`) and commit.')
            sys.exit(1)
        print('README.md is up to date')
    else:
        readme.write_text(txt)
        print(f'wrote {readme}')
