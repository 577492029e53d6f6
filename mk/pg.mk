# The PostgreSQL run store (store/pg.c): its tests start a real
# server from the Debian package (tests/pg-env.sh), so `make test` needs it;
# pg_token_stall.sh finds a dispatcher's open connections with ss (iproute2).
TEST_DEB_PKGS += postgresql iproute2

.PHONY: pg-soak pg-bench
# The full-size shared-store test: 3 dispatchers, 3,000 runs, one SIGSTOPped
# past its lease.
pg-soak: all test-deps
	PUSHPOOL=$(abspath $(BUILD)/pushpool) PG_RUNS=750 sh tests/scenario/pg_dispatch.sh

# Runs/s with 1, 2 and 3 dispatchers on one store.
pg-bench: all test-deps
	PUSHPOOL=$(abspath $(BUILD)/pushpool) sh tests/bench/pg_dispatchers.sh

# `make bench` reports the shared store's scaling too.
bench: pg-bench
