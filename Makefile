# miniai: the two commands are `make lab` and `make test`; the rest are the steps they are made of.
.PHONY: setup lab test export clean readme docs bench help
SHELL := /bin/bash
VENV := .venv/bin
# `make lab ARGS=--no-browser` prints the URL instead of opening a browser
ARGS ?=
ROOTFLAG := $(shell [ "$$(id -u)" = 0 ] && echo --allow-root)

help:
	@echo "make lab    set up, then open the notebooks in JupyterLab (ARGS=--no-browser prints the URL)"
	@echo "make test   set up, then run every test; ends with 'N passed, N failed'"
	@echo "make docs   build the docs site into _docs/ with Sphinx + MyST-NB, offline (no Quarto needed)"
	@echo "make export / clean / readme / bench"

setup:
	@bash tools/setup.sh

lab: setup
	$(VENV)/jupyter lab --notebook-dir=nbs $(ROOTFLAG) $(ARGS)

test:
	@bash tools/test.sh

export: setup
	$(VENV)/nbdev-export && $(VENV)/nbdev-clean && $(VENV)/python tools/make_readme.py

clean: setup
	$(VENV)/nbdev-clean

readme: setup
	$(VENV)/python tools/make_readme.py

docs: setup
	$(VENV)/python tools/build_docs.py

bench: setup
	$(VENV)/python bench/learner_overhead.py --quick && $(VENV)/python bench/data_path.py --quick
