# `make chaos`: 10,000 runs through `serve` under injected faults and
# kill -9 (tests/chaos/run.sh); CHAOS_RUNS, CHAOS_SEED tune it. `make oom`:
# the unit tests re-run failing the Nth allocation (tests/oom/).
CHAOS_RUNS ?= 10000
CHAOS_SEED ?= 1
.PHONY: chaos oom
chaos: all test-deps
	PUSHPOOL=$(BUILD)/pushpool RUNS=$(CHAOS_RUNS) SEED=$(CHAOS_SEED) DEADLINE=570 \
		sh tests/chaos/run.sh
