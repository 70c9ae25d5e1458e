# w2s build. `make` builds the programs and the SQLite extension; `make test`
# installs missing Debian packages (when root), builds and runs the suite;
# `make check-layers` checks the include rule (README, "Module map"), as
# `make test` does first; `make asan` runs the suite under AddressSanitizer
# + UBSan with clang;
# `make bench` measures speed; `make fuzz FUZZ_SECONDS=N` runs the fuzzers.
# `make MPI=1` builds the programs for mpirun into build/mpi; `make test-mpi`
# runs the mpirun -np 2 checks and `make bench-mpi` the scaling benchmark.
# test, asan, fuzz, test-mpi and bench-mpi install what they need first, so
# each works as the first command on a bare machine; `make test-fresh` checks
# that in a minimal Debian root (tests/fresh.sh).

# MPI=1: the programs built with mpicc for `mpirun` (README, "Scale beyond one
# machine"), in their
# own build directory since every object differs (-DW2S_MPI).
ifeq ($(MPI),1)
  BUILD  ?= build/mpi
  CC     := mpicc
  MPI_FLAGS := -DW2S_MPI
endif
BUILD    ?= build
CC       ?= cc
OPT      ?= -O2 -march=native
WARN     := -Wall -Wextra -Werror -Wshadow -Wvla -Wformat=2 -Wstrict-prototypes \
            -Wmissing-prototypes -Wno-unused-parameter -Wno-format-truncation
# clang knows no -Wformat-truncation (gcc's truncation warnings flag intended,
# bounded snprintf use).
ifneq ($(findstring clang,$(shell $(CC) --version 2>/dev/null)),)
  WARN   += -Wno-unknown-warning-option
endif
CFLAGS   += -std=c11 -D_GNU_SOURCE -g -fPIC -pthread $(OPT) $(WARN) $(SAN) $(MPI_FLAGS)
PKGS     := sqlite3 openblas libarchive libzstd libxxhash jansson libpcre2-8
DEB_PKGS := libsqlite3-dev libopenblas-dev libarchive-dev libzstd-dev libxxhash-dev \
            libjansson-dev libpcre2-dev libcmocka-dev libdnnl-dev pkg-config sqlite3
# Optional: only `make test-mpi` / `bench-mpi` need them.
MPI_DEB_PKGS := libopenmpi-dev openmpi-bin
# gcc only recommends the C library's headers: a machine may lack them.
DEB_PKGS += libc6-dev
# Programs pipeline.sh runs, and so the suite (test_pipeline): zstd for
# `tar --zstd`, gnuplot for the report's plot, the default corpus (pipeline.sh
# sets CORPUS_DEB_PKGS= when given --data).
CORPUS_DEB_PKGS ?= fortunes
PIPELINE_DEB_PKGS = zstd gnuplot-nox $(CORPUS_DEB_PKGS)
# `make asan` and `make fuzz`: clang and the sanitizer and libFuzzer runtimes
# of Debian's default clang, and its omp.h (matmul_bf16.c; gcc ships its own).
CLANG_DEB_PKGS := clang libclang-rt-dev libomp-dev
MPI_BUILD    := build/mpi
# pkg-config module -> Debian package that provides it.
deb_of_sqlite3 := libsqlite3-dev
deb_of_openblas := libopenblas-dev
deb_of_libarchive := libarchive-dev
deb_of_libzstd := libzstd-dev
deb_of_libxxhash := libxxhash-dev
deb_of_jansson := libjansson-dev
deb_of_libpcre2-8 := libpcre2-dev
deb_of_cmocka := libcmocka-dev
# oneDNN (bfloat16 products, common/nn/matmul_bf16.h) ships no .pc file: it
# is found by its header and linked with the OpenMP runtime it is built on.
DNNL_HEADER := /usr/include/oneapi/dnnl/dnnl.h

# Goals that install their packages before they build (in a sub-make, which
# reads the Makefile again) need no library yet; every other goal checks here.
INSTALLING_GOALS := deps deps-pipeline deps-clang deps-mpi test asan fuzz test-mpi bench-mpi \
                    test-fresh check-layers clean
ifneq ($(filter-out $(INSTALLING_GOALS),$(or $(MAKECMDGOALS),all)),)
  ifeq ($(shell command -v pkg-config),)
    $(error pkg-config not found: run `make deps` as root, or apt-get install $(DEB_PKGS))
  endif
  $(foreach p,$(PKGS),$(if $(shell pkg-config --exists $(p) && echo y),,\
    $(error library $(p) not found: apt-get install $(deb_of_$(p)))))
  ifeq ($(wildcard $(DNNL_HEADER)),)
    $(error oneDNN not found ($(DNNL_HEADER)): apt-get install libdnnl-dev)
  endif
endif
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -ldnnl -lgomp -lm
CFLAGS     += $(PKG_CFLAGS) -Icommon -I$(BUILD)/gen

COMMON_SRC  := $(sort $(wildcard common/*/*.c))
DISTILL_SRC := $(sort $(wildcard distill/*.c))
TRAIN_SRC   := $(sort $(wildcard train/*.c))
EXT_SRC     := $(sort $(wildcard common/labels/ext/*.c))
TEST_SRC    := $(sort $(wildcard tests/test_*.c))
BENCH_SRC   := $(sort $(wildcard tests/bench_*.c))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))

GEN_SRC  := $(BUILD)/gen/labels_schema.c
LIB      := $(BUILD)/libw2s.a
# The library also holds the extension's SQL functions, compiled with
# SQLITE_CORE (direct SQLite calls), for the programs' own connections
# (train --labels-where); build/softlabel.so is the loadable build of the same file.
LIB_OBJ  := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o) $(EXT_SRC:%.c=$(BUILD)/obj/%.core.o) \
            $(GEN_SRC:$(BUILD)/gen/%.c=$(BUILD)/obj/gen/%.o)
TESTS    := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCHES  := $(BENCH_SRC:tests/%.c=$(BUILD)/bench/%)
PROGRAMS := $(BUILD)/distill $(BUILD)/train
EXT      := $(if $(EXT_SRC),$(BUILD)/softlabel.so)

.PHONY: all test check-layers asan bench fuzz deps deps-mpi test-mpi bench-mpi install clean
all: $(PROGRAMS) $(EXT)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/%.core.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DSQLITE_CORE -MMD -MP -c $< -o $@

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# The schema is compiled into the library so a program needs no files beside it.
$(BUILD)/gen/labels_schema.c: schemas/labels.sql
	@mkdir -p $(dir $@)
	{ echo '/* Generated from schemas/labels.sql by the Makefile. */'; \
	  echo 'const char labels_schema_sql[] ='; \
	  sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/    "/' -e 's/$$/\\n"/' $<; \
	  echo '    ;'; } > $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/distill: $(DISTILL_SRC:%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(CFLAGS) $^ $(PKG_LIBS) -o $@

$(BUILD)/train: $(TRAIN_SRC:%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(CFLAGS) $^ $(PKG_LIBS) -o $@

$(BUILD)/softlabel.so: $(EXT_SRC:%.c=$(BUILD)/obj/%.o) $(LIB)
	$(CC) $(CFLAGS) -shared $^ -lzstd -lxxhash -lpcre2-8 -lm -o $@

# Test and bench programs may share helpers in tests/support_*.c.
SUPPORT_OBJ := $(patsubst %.c,$(BUILD)/obj/%.o,$(sort $(wildcard tests/support_*.c)))

# $(LIB) again at the end: a test's extra train/ objects come after it in $^.
$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(LIB) $(PKG_LIBS) -lcmocka -o $@

# test_golden decodes the train state inside resume checkpoints and writes
# the lines of train's --positions file.
$(BUILD)/tests/test_golden: $(BUILD)/obj/train/train_state.o $(BUILD)/obj/train/positions.o
# test_wide_vocab also tests train's label_reader, so it links its objects.
$(BUILD)/tests/test_wide_vocab: $(BUILD)/obj/tests/test_wide_vocab.o $(BUILD)/obj/train/label_reader.o \
                                $(BUILD)/obj/train/targets.o \
                                $(BUILD)/obj/train/train_state.o $(SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(PKG_LIBS) -lcmocka -o $@
# test_kd_divergence runs the trust weights through the objective.
$(BUILD)/tests/test_kd_divergence: $(BUILD)/obj/train/objective.o

$(BUILD)/bench/%: $(BUILD)/obj/tests/%.o $(SUPPORT_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $^ $(PKG_LIBS) -o $@

.PHONY: deps-pipeline deps-clang test-fresh
# One apt-get per goal: two at once would wait for each other's dpkg lock.
deps:
	@tests/deps.sh $(DEB_PKGS) $(EXTRA_DEB_PKGS)

deps-pipeline:
	@tests/deps.sh $(DEB_PKGS) $(PIPELINE_DEB_PKGS)

# Includes go down the layers only, with no cycles (tests/check_layers.sh).
check-layers:
	@tests/check_layers.sh .

deps-clang:
	@tests/deps.sh $(DEB_PKGS) $(CLANG_DEB_PKGS)

deps-mpi:
	@tests/deps.sh $(DEB_PKGS) $(MPI_DEB_PKGS)

test: check-layers deps-pipeline
	@$(MAKE) --no-print-directory all $(TESTS)
	@BUILD=$(BUILD) tests/run.sh $(TESTS)

asan: deps-clang
	@W2S_ASAN=1 ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(MAKE) --no-print-directory BUILD=build/asan CC=clang OPT="-O1 -fno-omit-frame-pointer" \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=all" test

bench: all $(BENCHES)
	@rm -f $(BUILD)/bench.jsonl
	@set -e; for b in $(BENCHES); do echo "== $$b"; BUILD=$(BUILD) $$b; done

# mpirun -np 2 checks and the scaling benchmark of the MPI build.
test-mpi: deps-mpi
	@$(MAKE) --no-print-directory MPI=1 BUILD=$(MPI_BUILD) $(MPI_BUILD)/train $(MPI_BUILD)/distill $(MPI_BUILD)/softlabel.so
	@BUILD=$(MPI_BUILD) tests/mpi/run.sh

bench-mpi: deps-mpi
	@$(MAKE) --no-print-directory MPI=1 BUILD=$(MPI_BUILD) $(MPI_BUILD)/train $(MPI_BUILD)/distill $(MPI_BUILD)/softlabel.so
	@MPI_BUILD=$(MPI_BUILD) BUILD=$(BUILD) tests/mpi/bench.sh

FUZZ_SECONDS ?= 10
FUZZERS := $(FUZZ_SRC:tests/fuzz/%.c=build/fuzz/%)
# The library's sources in one command, the extension's with SQLITE_CORE as
# in libw2s.a (that macro only changes what sqlite3ext.h declares).
build/fuzz/%: tests/fuzz/%.c $(COMMON_SRC) $(EXT_SRC) $(GEN_SRC)
	@mkdir -p $(dir $@)
	clang -std=c11 -D_GNU_SOURCE -DSQLITE_CORE -g -O1 -pthread $(WARN) -Wno-unknown-warning-option \
	    -fsanitize=fuzzer,address,undefined $(PKG_CFLAGS) -Icommon -I$(BUILD)/gen $< $(COMMON_SRC) \
	    $(EXT_SRC) $(GEN_SRC) $(PKG_LIBS) -o $@

fuzz: deps-clang
	@$(MAKE) --no-print-directory $(FUZZERS)
	@set -e; for f in $(FUZZERS); do name=$$(basename $$f); \
	    mkdir -p tests/fuzz/corpus/$$name build/fuzz/new/$$name; \
	    echo "== $$name ($(FUZZ_SECONDS) s)"; \
	    $$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 build/fuzz/new/$$name tests/fuzz/corpus/$$name 2>&1 | tail -n 2; done

# The README's commands as the first ones on a bare Debian root (20-40 min).
test-fresh:
	@tests/fresh.sh

PREFIX ?= /usr/local
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/w2s $(DESTDIR)$(PREFIX)/share/w2s
	install -m 755 $(BUILD)/distill $(DESTDIR)$(PREFIX)/bin/w2s-distill
	install -m 755 $(BUILD)/train $(DESTDIR)$(PREFIX)/bin/w2s-train
	install -m 644 $(BUILD)/softlabel.so $(DESTDIR)$(PREFIX)/lib/w2s/softlabel.so
	install -m 644 schemas/labels.sql schemas/*.md $(DESTDIR)$(PREFIX)/share/w2s/

clean:
	rm -rf build

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
