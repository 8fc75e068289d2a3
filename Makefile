# Two commands on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEBIAN_PEERS := orthanc orthanc-dicomweb dcmtk tesseract-ocr tesseract-ocr-eng tesseract-ocr-kor fonts-nanum

.PHONY: run test lint bench peers clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $(STAMP)

## run: create the virtualenv, install, start connrad on http://127.0.0.1:8080 with demo data
run: $(STAMP)
	$(BIN)/connrad serve

## peers: install the Debian peers the tests and benchmarks talk to (when root)
peers:
	@if [ "$$(id -u)" = 0 ]; then \
	  missing=""; for p in $(DEBIAN_PEERS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	  if [ -n "$$missing" ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	  fi; \
	else echo "not root: skipping Debian peers ($(DEBIAN_PEERS))"; fi

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

## test: install test dependencies and peers, run the linters and the whole suite
test: $(STAMP) peers lint
	$(BIN)/pytest -q -ra

## bench: connrad against Orthanc, same workload, same run
bench: $(STAMP) peers
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
