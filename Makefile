# Two entry points for a fresh machine: `make run` (the default pipeline) and `make test`.
# The CPU build of torch goes in first, so that no dependency pulls a multi-GB CUDA build.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0

.PHONY: install run sample test bench clean

$(BIN)/rnopt: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/rnopt

# The default pipeline (its report goes to reports/<model>-<time>/, which git ignores).
run: install
	$(BIN)/rnopt run

# Maintainers: the default pipeline, and its report copied over the sample linked from the README (tracked).
sample: install
	$(BIN)/rnopt run
	@latest=$$(ls -td reports/resnet20_cifar10-*/ | head -1) && mkdir -p reports/sample && \
	  cp "$$latest"report.* reports/sample/ && echo "sample report refreshed: reports/sample/report.html"

test: install
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python -m pytest benchmarks --benchmark-only --benchmark-save-data --benchmark-json=benchmarks/results.json
	$(BIN)/python benchmarks/table.py benchmarks/results.json

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
