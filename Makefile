# Set-up and the two jobs of the README. Everything a fresh machine needs is installed here.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: setup chromium demo test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt ".[test,d3graph]"
	touch $(STAMP)

# The main job: the static circuit site of the demo runs shipped in trainer/zoo/, written to site/.
demo: setup
	$(VENV)/bin/circexport build -o site
	@echo "open site/index.html in a browser (or: $(VENV)/bin/circexport serve site)"

# Debian's Chromium for the browser tests (as root; never `playwright install`, which downloads a browser).
chromium:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } || \
	  echo "chromium not installed (needs root: apt-get install -y chromium); browser tests will be skipped"

# The test suite, against the source tree, plus a check that the installed (non-editable) package is whole.
test: setup chromium
	cd /tmp && $(CURDIR)/$(PY) -c "import trainer.tokenizer as t, trainer.config as c; t.load_tokenizer('stdlib-2k'); assert c.shipped_configs(); import exporter.render as r, exporter.inputs as i; r.template_dir(); assert i.demo_runs()"
	$(PY) -m pytest tests

bench: setup
	$(PY) bench/train_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info
