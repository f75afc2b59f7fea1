# Everything a fresh machine needs: `make test` and `make run` set up .venv themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Debian packages the project needs (device tests, sox for benchmarks). Installed when run as
# root, otherwise the exact apt-get line is printed.
DEB_PACKAGES := libportaudio2 portaudio19-dev gcc python3-dev jackd2 sox systemd-container python3-venv
EXAMPLE := examples/data/example.wav

.PHONY: test run bench lint format deps clean

$(STAMP): pyproject.toml
	@$(MAKE) --no-print-directory deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "missing Debian packages; run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	$(PY) -m pytest -q

$(EXAMPLE): examples/make_example.py $(STAMP)
	$(PY) examples/make_example.py $(EXAMPLE)

run: $(STAMP) $(EXAMPLE)
	$(VENV)/bin/streamconv run -c configs/default.toml

bench: $(STAMP)
	$(PY) benchmarks/bench_convolve.py
	$(PY) benchmarks/bench_match.py

clean:
	rm -rf $(VENV) examples/data build *.egg-info
