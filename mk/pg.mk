# The PostgreSQL run store (store/pg.c): its tests start a real
# server from the Debian package (tests/pg-env.sh), so `make test` needs it;
# pg_token_stall.sh finds a dispatcher's open connections with ss (iproute2).
TEST_DEB_PKGS += postgresql iproute2

.PHONY: pg-soak pg-bench
# The full-size shared-store test: 3 dispatchers, 3,000 runs, one SIGSTOPped
# past its lease.
pg-soak: all test-deps
	PUSHPOOL=$(abspath $(BUILD)/pushpool) PG_RUNS=750 sh tests/scenario/pg_dispatch.sh

# The shared store like for like (tests/bench/pg_like.sh): 1 dispatcher on
# PostgreSQL against SQLite per pool type, to SUBMITTED and to SUCCEEDED,
# and 3 dispatchers against 1 at +20 ms. Its figures go to
# $(BUILD)/bench-pg.jsonl, which bench.sh adds to $(BUILD)/bench.json.
pg-bench: all test-deps
	PUSHPOOL=$(abspath $(BUILD)/pushpool) sh tests/bench/pg_like.sh $(BUILD)

# `make bench` reports the shared store's figures too (pg-bench first, so
# bench.sh finds them).
bench: pg-bench
