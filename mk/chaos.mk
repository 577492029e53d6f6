# `make chaos`: 10,000 runs through `serve` under injected faults and
# kill -9 (tests/chaos/run.sh); CHAOS_RUNS, CHAOS_SEED tune it. `make oom`:
# the unit tests re-run failing the Nth allocation (tests/oom/).
# A kill every 3-8 s: each restart resumes up to max_in_flight runs, and at
# 10,000 runs kills every 1-4 s leave too little time between restarts to
# finish within the 10 minutes (docs/reliability.md).
# `make chaos-pg`: the same on a PostgreSQL store, whose killed
# dispatcher's leases expire (5 s) rather than end with the process.
CHAOS_RUNS ?= 10000
CHAOS_SEED ?= 1
.PHONY: chaos chaos-pg oom
chaos: all test-deps
	PUSHPOOL=$(BUILD)/pushpool RUNS=$(CHAOS_RUNS) SEED=$(CHAOS_SEED) DEADLINE=570 \
		KILL_MIN=3 KILL_MAX=8 sh tests/chaos/run.sh

chaos-pg: all test-deps
	PUSHPOOL=$(BUILD)/pushpool RUNS=$(CHAOS_RUNS) SEED=$(CHAOS_SEED) DEADLINE=570 \
		KILL_MIN=3 KILL_MAX=8 STORE=postgresql sh tests/chaos/run.sh

# OOM torture: unit tests built with ASan in build-oom/ and linked with
# tests/oom/oom_wrap.c, re-run failing the Nth allocation for each N
# (OOM_MAX_RUNS caps the runs per test binary by striding N).
OOM_BUILD    := build-oom
OOM_WRAP     := -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=strdup,--wrap=strndup,--wrap=asprintf,--wrap=vasprintf
OOM_SAN      := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
OOM_BINS     := $(UNIT_SRCS:tests/unit/%.c=$(OOM_BUILD)/oom/%)
OOM_MAX_RUNS ?= 100
.PHONY: oom-build oom-bins
oom: oom-build
	@sh tests/oom/run.sh $(OOM_MAX_RUNS) $(OOM_BINS)

oom-build:
	$(MAKE) BUILD=$(OOM_BUILD) CFLAGS="-O1 -g $(OOM_SAN)" LDFLAGS="$(OOM_SAN)" oom-bins

oom-bins: $(OOM_BINS)

$(OOM_BUILD)/oom/%: tests/unit/%.c tests/oom/oom_wrap.c $(OOM_BUILD)/libppmock.a $(OOM_BUILD)/libpushpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(OOM_WRAP) $(UNIT_LDFLAGS_$*) -o $@ $< tests/oom/oom_wrap.c \
		$(OOM_BUILD)/libppmock.a $(OOM_BUILD)/libpushpool.a $(LDLIBS) $(MOCK_LIBS) -lcmocka
