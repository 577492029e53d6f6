# libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and UBSan, linked
# against the library built with clang's -fsanitize=fuzzer-no-link in
# build-fuzz/. `make fuzz` runs each target FUZZ_SECONDS (default 300) and
# prints its exec count; `make check-fuzz` is the short run for `make check`
# (FUZZ_SHORT_SECONDS each). Corpora grow in build-fuzz/corpus/NAME
# (tests/fuzz/run.sh).
FUZZ_BUILD   := build-fuzz
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_NAMES   := $(sort $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/fuzz/%)
FUZZ_SECONDS ?= 300
FUZZ_SHORT_SECONDS ?= 10
.PHONY: fuzz fuzz-build check-fuzz

fuzz-build:
	$(MAKE) BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) CFLAGS="-O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link" \
		fuzz-bins

# gcc's -Werror build is the lint; clang's own extra warnings are not repeated here.
ifeq ($(BUILD),$(FUZZ_BUILD))
override CFLAGS += -w
endif

.PHONY: fuzz-bins
fuzz-bins: $(FUZZ_BINS)

# These answer their HTTP calls themselves (tests/fuzz/canned_http.h): the
# blocking ones, and the Prefect source's, which it adds to a multi handle.
CANNED_MULTI_WRAPS := --wrap=pp_http_multi_add,--wrap=pp_http_multi_run,--wrap=pp_http_multi_pending,--wrap=pp_http_multi_abandon
FUZZ_LDFLAGS_fuzz_prefect := -Wl,--wrap=pp_http_perform,$(CANNED_MULTI_WRAPS)
FUZZ_LDFLAGS_fuzz_auth    := -Wl,--wrap=pp_http_perform,--wrap=sleep

$(FUZZ_BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/canned_http.h tests/fuzz/fuzz_resp.h $(FUZZ_BUILD)/libpushpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer $(FUZZ_LDFLAGS_$*) -o $@ $< $(FUZZ_BUILD)/libpushpool.a $(LDLIBS)

fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_BINS)

check-fuzz: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SHORT_SECONDS) $(FUZZ_BINS)
