# lvae -- build, test, bench.  See README.md for what each target does.

LUA       ?= lua5.4
BUSTED    ?= busted
PKGS      := lua5.4 openblas lapacke zlib libpng libcrypto
# nifticlib (libnifti2-dev) ships no pkg-config file.
NIFTI_CFLAGS := -isystem /usr/include/nifti
NIFTI_LIBS   := -lnifti2

CC        ?= gcc
# The module is built and used on the same machine (make test builds it),
# so it may use every instruction the machine has. Contraction into FMA is
# off: results must not depend on which instructions the compiler chose.
OPT       ?= -O3 -march=native -ffp-contract=off -fno-math-errno
WARN      := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wdouble-promotion \
             -Wno-unused-parameter
OPENMP    ?= -fopenmp
CFLAGS    += -std=c11 -D_GNU_SOURCE -fPIC $(OPT) $(WARN) $(OPENMP) \
             $(shell pkg-config --cflags $(PKGS) 2>/dev/null) $(NIFTI_CFLAGS)
# The Lua interpreter provides the Lua API symbols: the module does not
# link liblua (linking it would give two Lua runtimes in one process).
# BLAS = openmp (the default when Debian's libopenblas0-openmp is
# installed, as scripts/setup.sh does) links OpenBLAS's OpenMP build: one
# thread pool, libgomp's, for BLAS and the elementwise kernels. With the
# pthread build (BLAS = pthread) the two pools take turns spinning on the
# same two cores, and the same step's time varied more from one process to
# the next. The path goes in as an RPATH (not
# RUNPATH) so that LAPACKE's own libblas/liblapack resolve to the same
# build.
MULTIARCH := $(shell $(CC) -print-multiarch 2>/dev/null)
OPENMP_BLAS_DIR := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS      ?= $(if $(wildcard $(OPENMP_BLAS_DIR)/libopenblas.so.0),openmp,pthread)
ifeq ($(BLAS),openmp)
  BLAS_DIR := $(OPENMP_BLAS_DIR)
  BLAS_LIBS := -L$(BLAS_DIR) -lopenblas -Wl,--disable-new-dtags,-rpath,$(BLAS_DIR)
else
  BLAS_LIBS := $(shell pkg-config --libs openblas 2>/dev/null)
endif
LDLIBS    += $(BLAS_LIBS) $(shell pkg-config --libs lapacke zlib libpng libcrypto 2>/dev/null) $(NIFTI_LIBS) -lmvec -lm
# Open MPI (Debian's libopenmpi-dev) when installed: lv.mpi's collectives
# (src/distributed.c). Without it the module still builds, as a
# one-process job. MPI = 0 builds without it even when it is there.
MPI       ?= $(shell pkg-config --exists ompi-c 2>/dev/null && echo 1 || echo 0)
ifeq ($(MPI),1)
  CFLAGS  += -DLV_HAVE_MPI $(shell pkg-config --cflags ompi-c)
  LDLIBS  += $(shell pkg-config --libs ompi-c) -ldl
endif
# Never unload the module: Lua's dlclose at exit would unmap libgomp under
# its idle worker threads (a crash at exit, every other run).
LDFLAGS   += -Wl,-z,nodelete

ifeq ($(DEBUG),1)
  OPT     := -O0 -g
else
  CFLAGS  += -DNDEBUG
endif
# UBSan is fatal (-fno-sanitize-recover): undefined behaviour fails the
# run instead of printing a line that scrolls by.
ifeq ($(SANITIZE),1)
  OPT     := -O1 -g -fno-omit-frame-pointer
  CFLAGS  += -fsanitize=address,undefined -fno-sanitize-recover=undefined
  LDFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=undefined
endif

BUILD     := build$(if $(filter 1,$(SANITIZE)),-sanitize)
SOURCES   := $(wildcard src/*.c)
HEADERS   := $(wildcard src/*.h)
OBJECTS   := $(patsubst src/%.c,$(BUILD)/%.o,$(SOURCES))
# The sanitized module lives apart, so that it never stands in for the
# normal one (it needs the ASan runtime preloaded).
MODULE    := $(if $(filter 1,$(SANITIZE)),build-sanitize/lvae/core.so,lua/lvae/core.so)

.PHONY: all test bench bench-peer bench-mpi demo sanitize misuse fuzz clean setup

all: $(MODULE)

$(BUILD)/%.o: src/%.c $(HEADERS) | $(BUILD)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD):
	mkdir -p $@

# Linked to a temporary name and renamed: a process that has the module
# loaded keeps its copy, instead of crashing on a file rewritten under it.
$(MODULE): $(OBJECTS)
	mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) $(OPENMP) -o $@.tmp $(OBJECTS) $(LDLIBS)
	mv -f $@.tmp $@

setup:
	./scripts/setup.sh

# make test: install what is missing, build, run every spec.
test: setup
	$(MAKE) all
	./scripts/test.sh

# The reference the benchmarks compare with: OpenBLAS and plain C loops.
BENCH_REF := bench/blas_ref
$(BENCH_REF): bench/blas_ref.c
	$(CC) -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(OPENMP) \
	  $(shell pkg-config --cflags openblas) -o $@ $< \
	  $(shell pkg-config --libs openblas) -lmvec -lm

bench: setup
	./scripts/setup.sh bench
	$(MAKE) all $(BENCH_REF)
	./lvae bench/ops.lua
	./lvae bench/autograd.lua
	./lvae bench/nn.lua
	./lvae bench/integrators.lua
	$(MAKE) bench-peer
	$(MAKE) bench-mpi

# make bench-peer: lvae against an independent PyTorch implementation of
# every SPEC §6.2 model, a full training step each, after checking that
# both compute the same thing (bench/peer.lua; writes BENCHMARKS.md and
# bench/results/peer.json).
bench-peer: setup
	./scripts/setup.sh bench
	$(MAKE) all $(BENCH_REF)
	./lvae bench/peer.lua

# make bench-mpi: data-parallel training through the runner on 1, 2 and 4
# MPI ranks against one process with 1, 2 and 4 threads, the parts of a
# step, and the step time and efficiency predicted for 8-64 nodes
# (bench/mpi.lua; writes bench/results/mpi.json and its section of
# BENCHMARKS.md). Needs lvae built with Open MPI (setup installs it).
bench-mpi: setup
	$(MAKE) all
	./lvae bench/mpi.lua

# make demo: install, build, and run the main job (scripts/compare.lua
# --demo: a fixed test file, VAE, HVAE and qsl with matched and unit
# initial temperature trained briefly on a Fashion-MNIST subset, the
# reading of the table, the toy 2-D posterior of leapfrog and qsl).
demo: setup
	$(MAKE) all
	./lvae run scripts/compare.lua --demo

# make sanitize: the suite under ASan and UBSan, then the allocation-
# failure sweep again with LeakSanitizer on (every recovery path must
# free what it took). The normal module is built too: the specs that
# start ./lvae in a process of its own use it.
sanitize: setup
	$(MAKE) all
	$(MAKE) SANITIZE=1 all
	./scripts/test.sh --sanitize
	ASAN_OPTIONS=detect_leaks=1 ./scripts/test.sh --sanitize tests/alloc_failure_spec.lua

# make misuse: every public function called with bad arguments
# (tests/misuse_spec.lua, from the table tests/misuse_cases.lua) under ASan
# and fatal UBSan, each group of the table in its own process, so that a
# crash names its group. allocator_may_return_null: a size of 2^40 must
# come back as an error, as it does without ASan.
MISUSE_GROUPS = $(shell $(LUA) -e 'for _, g in ipairs(dofile("tests/misuse_cases.lua").groups) do print(g.name) end')
misuse: setup
	$(MAKE) SANITIZE=1 all
	@failed=""; for g in $(MISUSE_GROUPS); do \
	  out=$$(LVAE_MISUSE_GROUP=$$g ASAN_OPTIONS=allocator_may_return_null=1 \
	         ./scripts/test.sh --sanitize tests/misuse_spec.lua 2>&1); status=$$?; \
	  if [ $$status -eq 0 ]; then \
	    echo "misuse $$g: $$(echo "$$out" | grep '^misuse:' | sed 's/^misuse: //'), $$(echo "$$out" | tail -n 1)"; \
	  else \
	    echo "$$out"; echo "misuse $$g: FAILED"; failed="$$failed $$g"; \
	  fi; \
	done; \
	if [ -n "$$failed" ]; then echo "misuse: failed groups:$$failed"; exit 1; fi; \
	echo "misuse: every group passed"

# make fuzz: libFuzzer (clang) on the file parsers, under ASan and UBSan,
# for FUZZ_SECONDS from a generated seed corpus.
FUZZ_SECONDS ?= 60
CORE_SOURCES := $(filter-out src/lua_%.c,$(SOURCES))
fuzz: setup
	./scripts/setup.sh fuzz
	$(MAKE) all
	mkdir -p build-fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fopenmp -std=c11 \
	  -D_GNU_SOURCE -Isrc $(shell pkg-config --cflags openblas lapacke) $(NIFTI_CFLAGS) \
	  tests/fuzz/io_fuzz.c $(CORE_SOURCES) -o build-fuzz/io_fuzz \
	  $(LDLIBS) -lmvec
	./lvae tests/fuzz/seeds.lua build-fuzz/corpus
	./build-fuzz/io_fuzz -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus

clean:
	rm -rf build build-sanitize build-fuzz lua/lvae/core.so $(BENCH_REF)
