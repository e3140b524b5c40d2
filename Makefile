# The two commands of the README: `make demo` (install, search, build, verify) and `make test` (install, all tests).
VENV ?= .venv
PY := $(VENV)/bin/python
TC := $(VENV)/bin/tinycompile
RUNS ?= runs
DEMO_STUDY ?= demo-mnist1d-cortex-m4

.PHONY: setup demo test bench lint clean

setup:
	bash scripts/setup.sh

demo: setup
	$(TC) targets
	$(TC) search --task mnist1d --space cnn1d --target cortex-m4 --trials 24 --jobs 2 --seed 0 \
		--sram-kb 64 --flash-kb 256 --study $(DEMO_STUDY) --out $(RUNS)
	$(TC) build $(RUNS)/$(DEMO_STUDY)/best --target cortex-m4 -o build/demo-cortex-m4
	$(TC) build $(RUNS)/$(DEMO_STUDY)/best --target fpga --array 8 -o build/demo-fpga
	$(TC) build $(RUNS)/$(DEMO_STUDY)/best --target soc-vexriscv -o build/demo-soc

test: setup
	bash scripts/run_tests.sh

bench: setup
	$(PY) bench/run_all.py

clean:
	rm -rf $(RUNS) build
