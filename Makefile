# Set-up and the two jobs of the README. Everything a fresh machine needs is installed here.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt ".[test]"
	touch $(STAMP)

# The main job: a short training run of the tiny config (until `circexport build` lands).
demo: setup
	rm -rf runs/tiny-demo
	$(VENV)/bin/circexport train --config tiny --out runs/tiny-demo --set train.steps=200

# The test suite, against the source tree, plus a check that the installed (non-editable) package is whole.
test: setup
	cd /tmp && $(CURDIR)/$(PY) -c "import trainer.tokenizer as t, trainer.config as c; t.load_tokenizer('stdlib-2k'); assert c.shipped_configs()"
	$(PY) -m pytest tests

bench: setup
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
