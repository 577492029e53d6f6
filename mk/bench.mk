# `make bench`: throughput, CPU, memory, latency and startup figures, each
# against a baseline measured in the same run (docs/performance.md).
# tests/bench/bench.sh prints the table and writes $(BUILD)/bench.json.
TEST_DEB_PKGS += valgrind sqlite3 time gnuplot-nox
BENCH_BINS := $(BUILD)/bench/baseline $(BUILD)/bench/micro $(BUILD)/bench/claim

.PHONY: bench
bench: all test-deps $(BENCH_BINS)
	@sh tests/bench/bench.sh $(BUILD)

$(BUILD)/bench/baseline: tests/bench/baseline.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -pthread $(LDFLAGS) -o $@ $< $(shell pkg-config --libs libcurl)

$(BUILD)/bench/micro: tests/bench/micro.c $(BUILD)/libpushpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpushpool.a $(LDLIBS)

$(BUILD)/bench/claim: tests/bench/claim.c $(BUILD)/libpushpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libpushpool.a $(LDLIBS)
