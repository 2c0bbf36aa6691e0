# Two commands set everything up: `make demo` and `make test` (each creates .venv if missing).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DEMO_OUT ?= demo_output
SCIENCE_OUT ?= science_output

.PHONY: demo science test install benchmark gpu-check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python setup.py
	$(BIN)/python -m pip install --quiet --upgrade "pip==24.2" "setuptools==69.5.1" "wheel==0.43.0"
	$(BIN)/python -m pip install --quiet -e ".[cpu,test]"
	touch $(STAMP)

install: $(STAMP)

# ... and the results page, DEMO_OUT/report.html (its path is printed first)
demo: $(STAMP)
	$(BIN)/python scripts/demo.py --out $(DEMO_OUT)

# every experiment of the paper on the embedded world, and a findings table (<= 2 h on 2 cores)
science: $(STAMP)
	$(BIN)/brain2pix experiment all --profile science --out $(SCIENCE_OUT)

test: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	  command -v google-chrome >/dev/null 2>&1 || echo "NOTE: no headless browser (chromium): \
	the results page's browser test is SKIPPED (Debian: apt-get install chromium)"
	$(BIN)/python -m pytest -q

benchmark: $(STAMP)
	$(BIN)/python benchmarks/bench_preprocessing.py
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_evaluation.py
	$(BIN)/python benchmarks/bench_prf.py
	$(BIN)/python benchmarks/bench_distributed.py

# on a machine with a GPU and `pip install -e ".[cu112]"`; `--dry-run` runs it on the CPU
gpu-check: $(STAMP)
	$(BIN)/python benchmarks/gpu_check.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) $(SCIENCE_OUT) .pytest_cache
