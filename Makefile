# Everything a fresh machine needs: `make test` and `make run` set up .venv themselves.
# `make run` installs what running needs (the package and its dependencies: files, pipes, sound
# devices); `make test` adds the test tools (pytest, ruff, PyAudio, matplotlib, dask, ...).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUN_STAMP := $(VENV)/.installed-run
STAMP := $(VENV)/.installed-test
# Debian packages the project needs. Installed when run as root, otherwise the exact apt-get
# line is printed. Running: the venv module, PortAudio for sounddevice (libsndfile comes in
# soundfile's wheel), gcc and the Python headers for the compiled engine (streamconv/dsp/
# _fastconv.c; without them the install still works, on the slower numpy engine). Testing adds:
# PyAudio's build (portaudio19-dev), JACK for the device tests, sox for the pipe tests and
# benchmarks, ffmpeg and flac for the pipe tests (the other ends users put there; ffmpeg is
# ~275 MB with its libraries), systemd-container for the unit tests, chromium and
# chromium-driver for the dashboard's browser test, mosquitto for the MQTT output's tests.
RUN_DEB_PACKAGES := python3-venv libportaudio2 gcc python3-dev
DEB_PACKAGES := $(RUN_DEB_PACKAGES) portaudio19-dev jackd2 sox ffmpeg flac systemd-container \
	chromium chromium-driver mosquitto
EXAMPLE := examples/data/example.wav

.PHONY: test run bench lint format deps run-deps apt clean

$(VENV)/bin/python:
	@$(MAKE) --no-print-directory run-deps
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

ENGINE_SOURCES := setup.py streamconv/dsp/_fastconv.c streamconv/dsp/_fastconv_impl.h

$(RUN_STAMP): pyproject.toml $(ENGINE_SOURCES) | $(VENV)/bin/python
	@$(MAKE) --no-print-directory run-deps
	$(PY) -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(STAMP): pyproject.toml $(ENGINE_SOURCES) | $(VENV)/bin/python
	@$(MAKE) --no-print-directory deps
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

deps:
	@$(MAKE) --no-print-directory apt PKGS="$(DEB_PACKAGES)"

run-deps:
	@$(MAKE) --no-print-directory apt PKGS="$(RUN_DEB_PACKAGES)"

apt:
	@missing=""; for p in $(PKGS); do \
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
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: lint
	STREAMCONV_REQUIRE_COMPILED=1 $(PY) -m pytest -q

$(EXAMPLE): examples/make_example.py $(RUN_STAMP)
	$(PY) examples/make_example.py $(EXAMPLE)

run: $(RUN_STAMP) $(EXAMPLE)
	$(VENV)/bin/streamconv run -c configs/default.toml

bench: $(STAMP)
	$(PY) benchmarks/bench_convolve.py
	$(PY) benchmarks/bench_match.py

clean:
	rm -rf $(VENV) examples/data build *.egg-info
