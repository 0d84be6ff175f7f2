# Set-up and the two jobs of the README. Everything a fresh machine needs is installed here.
VENV ?= .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.run-stamp
TEST_STAMP := $(VENV)/.test-stamp

.PHONY: setup chromium demo test bench zoo clean

# The package and its runtime dependencies; the test set-up adds the test and d3graph extras.
setup: $(RUN_STAMP)

PACKAGE_FILES := $(shell find trainer exporter web_template -type f -not -path '*/__pycache__/*' 2>/dev/null)
$(RUN_STAMP): pyproject.toml constraints.txt $(PACKAGE_FILES)
	python3 -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt torch
	$(PY) -m pip install -q -c constraints.txt .
	touch $@

$(TEST_STAMP): $(RUN_STAMP)
	$(PY) -m pip install -q -c constraints.txt ".[test,d3graph]"
	touch $@

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
test: $(TEST_STAMP) chromium
	cd /tmp && $(CURDIR)/$(PY) -c "import trainer.tokenizer as t, trainer.config as c; t.load_tokenizer('stdlib-2k'); assert c.shipped_configs(); import exporter.render as r, exporter.inputs as i; r.template_dir(); assert i.demo_runs()"
	$(PY) -m pytest tests

bench: setup
	$(PY) bench/train_throughput.py

# Retrain everything shipped in trainer/zoo/ (about 9 hours on 2 CPU cores, half of it pruning the dense baseline):
# the sparse demo; its two baselines, each taken at the step whose validation loss matches the demo's: dense, and
# activation-only (dense weights, the demo's AbsTopK); four small frontier runs; each pruned at the paper's target,
# keeping only the circuits that pass every check.
CE := $(VENV)/bin/circexport
# The paper's target loss: a task is learned, and its circuit pruned, at a loss of 0.15 or less.
ZOO_TARGET := 0.15
FRONTIER := d64-l0-25k:64:25000 d64-l0-50k:64:50000 d96-l0-50k:96:50000 d96-l0-100k:96:100000
zoo: setup
	$(CE) train --config demo --out runs/demo --quiet
	$(CE) train --config demo-dense --out runs/demo-dense-full --quiet
	$(CE) snapshot runs/demo-dense-full --match runs/demo --out runs/demo-dense
	$(CE) train --config demo-dense-topk --out runs/demo-dense-topk-full --quiet
	$(CE) snapshot runs/demo-dense-topk-full --match runs/demo --out runs/demo-dense-topk
	for f in $(FRONTIER); do set -- $$(echo $$f | tr : ' '); name=$$1 width=$$2 l0=$$3; \
	  $(CE) train --config frontier --out runs/frontier-$$name --quiet --set name=frontier-$$name \
	    --set model.d_model=$$width --set sparsity.l0=$$l0 || exit 1; done
	for r in demo demo-dense demo-dense-topk $(foreach f,$(FRONTIER),frontier-$(firstword $(subst :, ,$(f)))); do \
	  $(CE) prune runs/$$r --jobs 2 --quiet --faithful-only --target-loss $(ZOO_TARGET) || exit 1; \
	  rm -rf trainer/zoo/$$r && cp -r runs/$$r trainer/zoo/$$r && rm -rf trainer/zoo/$$r/state trainer/zoo/$$r/snapshots \
	  || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
