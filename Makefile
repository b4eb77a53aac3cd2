# Two targets do all the set-up on a fresh clone (see README):
#   make demo   -> virtual env + install + the whole pipeline on BasicMotions (report in topokd-demo-basic-motions/)
#   make test   -> virtual env + install + the test suite
PYTHON ?= python3
VENV ?= .venv
# The CPU build of PyTorch; on a GPU machine override, e.g. TORCH_SPEC="torch==2.13.0"
# with your CUDA index.  Installed first so that `torch>=2.1` below is already met.
TORCH_SPEC ?= torch==2.13.0
BIN := $(VENV)/bin
STAMP := $(VENV)/.topokd-installed

.PHONY: install demo test docs bench bench-pinet bench-pinet-image bench-pinet-hapt bench-distill bench-distill-hapt bench-compress bench-cli bench-dask bench-ddp clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/topokd demo --force

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The documentation site (mkdocs.yml); --strict fails on any warning (broken link or reference).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_tda.py

bench-pinet: $(STAMP)
	$(BIN)/python benchmarks/bench_pinet.py

bench-pinet-image: $(STAMP)
	$(BIN)/python benchmarks/bench_pinet_image.py

bench-pinet-hapt: $(STAMP)
	$(BIN)/python benchmarks/bench_pinet_hapt.py --threads 1

bench-distill: $(STAMP)
	$(BIN)/python benchmarks/bench_distill.py

bench-distill-hapt: $(STAMP)
	$(BIN)/python benchmarks/bench_distill_hapt.py

bench-compress: $(STAMP)
	$(BIN)/python benchmarks/bench_compress.py

bench-cli: $(STAMP)
	$(BIN)/python benchmarks/bench_cli.py

bench-dask: $(STAMP)
	$(BIN)/python benchmarks/bench_dask.py

bench-ddp: $(STAMP)
	$(BIN)/python benchmarks/bench_ddp.py

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
