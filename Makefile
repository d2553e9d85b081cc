# `make demo` runs the demo appliance; `make test` runs the whole suite.
# Both create (or refresh, when the packaging changes) .venv and install the
# project into it first.

PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin
TRIAL_JOBS ?= 2

.PHONY: venv demo test bench bench-qps clean

$(BIN)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# compat mode puts the checkout itself on sys.path, so twistd finds
	# twisted/plugins/gslb_plugin.py in it.
	$(BIN)/python -m pip install --quiet --editable '.[test]' --config-settings editable_mode=compat
	touch $@

venv: $(BIN)/.installed

demo: venv
	$(BIN)/twistd --pidfile= -n gslb

test: venv
	$(BIN)/trial --jobs=$(TRIAL_JOBS) tests benchmarks

# The performance targets (benchmarks/PERF.md): prints the change against
# the previous run, kept in benchmarks/results/perf-last.json.
bench: venv
	$(BIN)/python -m benchmarks.perf

bench-qps: venv
	$(BIN)/python -m benchmarks.dns_qps

clean:
	rm -rf $(VENV) _trial_temp* *.egg-info
