# pushpool: one binary, every capability tested by `make test`.
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share/pushpool
MANDIR  ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

VERSION := 0.1.0
CC      ?= cc
BUILD   ?= build
PKGS    := libcurl openssl libjwt inih libmicrohttpd sqlite3 libnghttp2 libpq cmocka
# Debian packages providing PKGS.
DEB_PKGS := libcurl4-openssl-dev libssl-dev libjwt-dev libinih-dev libmicrohttpd-dev \
            libsqlite3-dev libnghttp2-dev libpq-dev libcmocka-dev pkg-config
# pushpool-mock only: protoc compiles the cloud protos it validates against,
# PCRE2 runs botocore's Unicode patterns (mk/cloud-specs.mk).
MOCK_DEB_PKGS := protobuf-compiler libpcre2-dev
MOCK_LIBS = $(shell pkg-config --libs libpcre2-8 2>/dev/null)
# Tools the tests drive (mk/*.mk fragments add theirs).
TEST_DEB_PKGS := jq curl clang-format openssl

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
           -Wpointer-arith -Wformat=2 -Wvla -Wundef -Wcast-align -Wwrite-strings \
           -Wno-unused-parameter -Wno-format-truncation -Werror
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(filter-out cmocka,$(PKGS)) 2>/dev/null)
CFLAGS  ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -I. -I$(BUILD) $(WARN) $(PKG_CFLAGS) \
           -DPP_DATADIR='"$(DATADIR)"' -DPP_VERSION='"$(VERSION)"' -MMD -MP
override LDLIBS += $(PKG_LIBS) -lm -lpthread

# Generic code first (lib/ depends on nothing above it), then the parts built on it.
# The mock is not among them: it is a test program of its own (below).
SRC_DIRS  := lib render store sources auth providers provision dispatcher dispatcher/cmd
LIB_SRCS  := $(filter-out dispatcher/main.c,$(sort $(foreach d,$(SRC_DIRS),$(wildcard $(d)/*.c))))
GEN_SRCS  := $(BUILD)/gen/templates_blob.c $(BUILD)/gen/ui_page.c
LIB_OBJS  := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(GEN_SRCS:%.c=%.o)
# pushpool-mock, the fake clouds the tests run against: mock/ on top of lib/,
# built but never installed (curl's tests/server/ model).
MOCK_SRCS := $(filter-out mock/main.c,$(sort $(wildcard mock/*.c)))
MOCK_OBJS := $(MOCK_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/cloud_specs.o
UNIT_SRCS := $(sort $(wildcard tests/unit/*/*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TEMPLATES := $(sort $(wildcard templates/*.json))

.PHONY: all deps test-deps test unit scenario check install uninstall clean format format-check interop demo
all: deps $(BUILD)/pushpool $(BUILD)/pushpool-mock

deps:
	@sh tools/deps.sh $(DEB_PKGS) $(MOCK_DEB_PKGS)

test-deps:
	@sh tools/deps.sh $(TEST_DEB_PKGS)

$(BUILD)/pushpool: $(BUILD)/dispatcher/main.o $(BUILD)/libpushpool.a
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MALLOC_LIBS) $(LDLIBS)
	ln -sf $(BUILD)/pushpool pushpool 2>/dev/null || true

$(BUILD)/libpushpool.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libppmock.a: $(MOCK_OBJS)
	@rm -f $@
	ar rcs $@ $^

# mock/ on lib/ alone: linked with the lib/ objects, never libpushpool.a, so
# a mock that reached beyond lib/ would not link (tools/check-layers.sh
# keeps its includes to lib/ and mock/).
MOCK_LIB_OBJS := $(filter $(BUILD)/lib/%,$(LIB_OBJS))
$(BUILD)/pushpool-mock: $(BUILD)/mock/main.o $(BUILD)/libppmock.a $(MOCK_LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(MALLOC_LIBS) $(LDLIBS) $(MOCK_LIBS)

# Order-only on deps: under `make -j` a compile must not start before the
# headers it includes are installed (a fresh machine's first build).
$(BUILD)/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/gen/templates_blob.c: $(TEMPLATES) tools/embed.sh
	@mkdir -p $(dir $@)
	sh tools/embed.sh $(TEMPLATES) > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/ui_page.c: dispatcher/ui_page.html tools/embed-page.sh
	@mkdir -p $(dir $@)
	sh tools/embed-page.sh dispatcher/ui_page.html > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/ui_page.o: $(BUILD)/gen/ui_page.c
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

$(BUILD)/gen/templates_blob.o: $(BUILD)/gen/templates_blob.c
	$(CC) $(CFLAGS) -Wno-missing-prototypes -c -o $@ $<

# Unit tests may start the mock in-process: libppmock.a comes first.
# UNIT_LDFLAGS_<area>/<file>: a suite's own link flags (lib/http watches
# the HTTP layer's polls).
UNIT_LDFLAGS_lib/http := -Wl,--wrap=poll
$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libppmock.a $(BUILD)/libpushpool.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) $(UNIT_LDFLAGS_$*) -o $@ $< $(BUILD)/libppmock.a $(BUILD)/libpushpool.a $(LDLIBS) $(MOCK_LIBS) -lcmocka

# CI runs a plain `make test`: the build goes on every core all the same
# (unless a -j of the caller's already shares them), and the unit suites,
# which mostly wait, run beside the scenarios (tests/run-tests.sh).
test: test-deps
	@$(MAKE) --no-print-directory $(if $(findstring jobserver,$(MAKEFLAGS)),,-j$(shell nproc)) all $(UNIT_BINS)
	@$(MAKE) --no-print-directory format-check
	@sh tools/check-layers.sh
	@sh tests/run-tests.sh $(BUILD)/pushpool $(UNIT_BINS)

# `make unit T=auth/aws` runs the one suite tests/unit/auth/aws.c.
unit: all $(if $(T),$(BUILD)/tests/$(T),$(UNIT_BINS))
	@sh tests/run-unit.sh $(if $(T),$(BUILD)/tests/$(T),$(UNIT_BINS))

scenario: all test-deps
	@sh tests/run-scenarios.sh $(BUILD)/pushpool

# Sanitizers, then valgrind, then a short run of every fuzz target: all clean.
# PP_TEST_SLOWDOWN: scenarios with a whole-run deadline (chaos.sh) give
# the sanitized build that many times as long.
check: deps
	PP_TEST_SLOWDOWN=4 $(MAKE) BUILD=build-asan MALLOC=libc CFLAGS="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		LDFLAGS="-fsanitize=address,undefined" test
	$(MAKE) all $(UNIT_BINS)
	@VALGRIND=1 sh tests/run-unit.sh $(UNIT_BINS)
	$(MAKE) check-fuzz

demo: all test-deps
	@sh tools/demo.sh $(BUILD)/pushpool

# Real clients from Debian as cross-checks of our signers and mock.
INTEROP_DEB_PKGS := awscli python3-botocore python3-google-auth python3-requests \
                    python3-protobuf python3-regex protobuf-compiler
interop: all
	@sh tools/deps.sh $(INTEROP_DEB_PKGS)
	@sh tests/interop/run.sh $(BUILD)/pushpool

# The unit's ExecStart follows BINDIR; DESTDIR only stages the files.
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(DATADIR)/templates $(DESTDIR)$(MANDIR)/man1 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(UNITDIR)
	install -m 0755 $(BUILD)/pushpool $(DESTDIR)$(BINDIR)/pushpool
	install -m 0644 $(TEMPLATES) $(DESTDIR)$(DATADIR)/templates/
	install -m 0644 examples/pushpool.conf $(DESTDIR)$(DATADIR)/pushpool.conf.example
	install -m 0644 man/pushpool.1 $(DESTDIR)$(MANDIR)/man1/pushpool.1
	install -m 0644 man/pushpool.conf.5 $(DESTDIR)$(MANDIR)/man5/pushpool.conf.5
	sed 's|/usr/local/bin/pushpool|$(BINDIR)/pushpool|g' deploy/systemd/pushpool.service \
		>$(DESTDIR)$(UNITDIR)/pushpool.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/pushpool.service

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/pushpool $(DESTDIR)$(MANDIR)/man1/pushpool.1 \
		$(DESTDIR)$(MANDIR)/man5/pushpool.conf.5 $(DESTDIR)$(UNITDIR)/pushpool.service
	rm -rf $(DESTDIR)$(DATADIR)

C_FILES = $$(git ls-files '*.c' '*.h' 2>/dev/null || find . -path './build*' -prune -o -name '*.[ch]' -print)
format:
	clang-format -i $(C_FILES)

# One style (.clang-format) for every C file: a difference fails the tests.
format-check: test-deps
	@if out=$$(clang-format --dry-run --Werror $(C_FILES) 2>&1); then \
		echo "ok   format: every C file follows .clang-format"; \
	else printf '%s\n' "$$out" | head -n 20; echo "FAIL: format: run 'make format'"; exit 1; fi

clean:
	rm -rf build build-asan build-fuzz build-oom pushpool

# Each feature's extra targets (bench, fuzz, chaos, pg, ...) live in mk/.
-include $(sort $(wildcard mk/*.mk))

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
