# The pushpool binary's allocator: jemalloc, as redis links it. A run's
# JSON trees, SQLite's b-tree balancing and libcurl's buffers allocate and
# free in bursts of a loop turn, which glibc's malloc serves slowly
# (docs/performance.md, step 31). MALLOC=libc keeps glibc's: the sanitizer
# build of `make check` must, since ASan brings its own. Only the binary
# links it: unit tests (valgrind, the OOM wrapper), fuzz targets and the
# mock keep glibc's.
MALLOC ?= jemalloc
ifeq ($(MALLOC),jemalloc)
DEB_PKGS += libjemalloc-dev
MALLOC_LIBS := -ljemalloc
else ifeq ($(MALLOC),libc)
MALLOC_LIBS :=
else
$(error MALLOC is jemalloc or libc, not '$(MALLOC)')
endif
