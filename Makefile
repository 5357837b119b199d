# libkdcam - build, test, install.
#   make            library (static + shared), kdcam tool, examples
#   make test       cmocka suite (SAN=1: under AddressSanitizer + UBSan)
#   make test-neon  the NEON kernels, cross-built for aarch64, under qemu-user
#   make demo       the bundled teacher/student demo
#   make bench      benchmarks
#   make fuzz       libFuzzer targets (clang); make fuzz-smoke runs each 30 s
#   make install    PREFIX=/usr/local DESTDIR=
#   make JPEG=stb   without libjpeg-turbo (JPEG not bit-exact with PIL)
# CFLAGS/LDFLAGS are yours: what you pass is added to what the build needs.

PREFIX     ?= /usr/local
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
BINDIR     ?= $(PREFIX)/bin
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

CC      ?= cc
CFLAGS  ?= -O2 -g
AR      ?= ar
PYTHON  ?= /usr/bin/python3

VERSION   := 0.1.0
SOVERSION := 0

# float-cast-overflow: GCC's -fsanitize=undefined leaves it out (clang's
# does not); a NaN converted to an integer is what it catches.
ifeq ($(FUZZ),1)
# `make fuzz` builds here with clang: the library instrumented for libFuzzer.
BUILD   ?= build/fuzz
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow,fuzzer-no-link \
            -fno-omit-frame-pointer -fno-sanitize-recover=all
else ifeq ($(SAN),1)
BUILD   ?= build/san
SANFLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer \
            -fno-sanitize-recover=all
else
BUILD   ?= build
SANFLAGS :=
endif

# What every file needs; never -march=native for the library: SIMD files
# get their own flags below.
# Every folder of lib/ is on the include path: header names are unique in the
# tree, so a file names the header it needs, not where it lives.
LIB_DIRS    := $(sort $(shell find lib -type d))
KDC_CFLAGS  := -std=c11 -D_POSIX_C_SOURCE=200809L -Wall -Wextra -Wshadow \
               -Wno-unused-parameter -Iinclude $(LIB_DIRS:%=-I%) -I/usr/include/stb \
               -fPIC -MMD -MP $(SANFLAGS)
LIB_CFLAGS  := -DKDC_BUILDING_LIBRARY -fvisibility=hidden
# GCC at -O2 vectorizes a loop only if no scalar remainder loop is needed
# ("very cheap" cost model), which leaves the portable loops with run-time
# trip counts (Winograd transforms, padding copies, col2im) scalar; the
# "cheap" model vectorizes them. Same bits: without -ffast-math GCC
# vectorizes no float reduction, and an element-wise add, multiply or copy
# rounds alike in a vector lane. Compilers without the option (clang) skip it.
KDC_VECT    := $(shell $(CC) -Werror -fvect-cost-model=cheap -x c -c /dev/null -o /dev/null \
                 2>/dev/null && echo -fvect-cost-model=cheap)
LIB_CFLAGS  += $(KDC_VECT)
KDC_LDLIBS  := -lm -lpthread

# JPEG decoder. JPEG=turbo (default): libjpeg-turbo with Pillow's settings,
# bit-exact with PIL (lib/io/jpeg.c). JPEG=stb: stb_image's decoder, no
# dependency, but pixels differ from PIL's by a level or two (docs/api.md).
# Use a separate BUILD folder per choice: objects do not track it.
JPEG ?= turbo
ifeq ($(JPEG),turbo)
KDC_CFLAGS += -DKDC_HAVE_LIBJPEG
KDC_LDLIBS += -ljpeg
PC_REQUIRES_PRIVATE := libjpeg
else ifeq ($(JPEG),stb)
PC_REQUIRES_PRIVATE :=
else
$(error JPEG must be turbo or stb, not '$(JPEG)')
endif

# Sources are found in every folder below lib/ and cli/ (docs/architecture.md).
LIB_SRC  := $(sort $(shell find lib -name '*.c'))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_SRC  := $(sort $(shell find cli -name '*.c'))
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
EX_SRC   := $(sort $(wildcard examples/*.c))
EX_BIN   := $(EX_SRC:examples/%.c=$(BUILD)/examples/%)
TESTUTIL_SRC := $(sort $(wildcard tests/util/*.c))
TESTUTIL_OBJ := $(TESTUTIL_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)
FUZZ_PLAIN := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/plain_%)

GENW   := $(BUILD)/kdc-genweights
STATIC := $(BUILD)/libkdcam.a
SHARED := $(BUILD)/libkdcam.so.$(VERSION)
KDCAM  := $(BUILD)/kdcam

.SECONDARY:

.PHONY: all lib test test-neon check demo bench examples install uninstall clean FORCE \
        fuzz fuzz-targets fuzz-smoke
all: lib $(KDCAM) examples $(GENW)

lib: $(STATIC) $(SHARED)
examples: $(EX_BIN)

$(BUILD)/lib/%.o: lib/%.c
	@mkdir -p $(@D)
	$(CC) $(KDC_CFLAGS) $(LIB_CFLAGS) $(CFLAGS) -c $< -o $@

# SIMD kernels: files named by ISA get that ISA's flags, and only they (the
# ISA is chosen at run time, lib/kernels/kernels.h). On another architecture the
# file compiles to nothing, so the flags are only given where they apply.
TARGET_MACHINE := $(shell $(CC) -dumpmachine 2>/dev/null)
ifneq ($(filter x86_64-% amd64-%,$(TARGET_MACHINE)),)
ISA_AVX2_FLAGS := -mavx2 -mfma
ISA_AVX512_FLAGS := -mavx512f -mavx2 -mfma
endif
$(BUILD)/lib/%_avx2.o: lib/%_avx2.c
	@mkdir -p $(@D)
	$(CC) $(KDC_CFLAGS) $(LIB_CFLAGS) $(CFLAGS) $(ISA_AVX2_FLAGS) -c $< -o $@
$(BUILD)/lib/%_avx512.o: lib/%_avx512.c
	@mkdir -p $(@D)
	$(CC) $(KDC_CFLAGS) $(LIB_CFLAGS) $(CFLAGS) $(ISA_AVX512_FLAGS) -c $< -o $@

# stb_image 2.27 (docs/security.md) on corrupt JPEG entropy data: its DC
# predictor adds and multiplies without bounds (int overflow; 2.28 checks),
# so stb_impl.c is compiled with -fwrapv: the overflow wraps, as defined
# behaviour, into a wrong pixel of a corrupt file. And its bit reader shifts
# a zero by more than 31 bits once a scan reaches a marker early (2.28
# returns early): 0 on every machine, no memory touched; its decoders also
# shift negative values left, which GCC defines as two's complement. In
# sanitizer builds the shift and signed-overflow checks, and only they, are
# off for this one file.
$(BUILD)/lib/io/stb_impl.o: KDC_CFLAGS += -fwrapv
$(BUILD)/lib/io/stb_impl.o: Makefile
ifneq ($(SANFLAGS),)
$(BUILD)/lib/io/stb_impl.o: KDC_CFLAGS += -fno-sanitize=shift,signed-integer-overflow
endif

$(BUILD)/examples/%.o: KDC_CFLAGS += -Iinclude

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(KDC_CFLAGS) $(CFLAGS) -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(CC) -shared -Wl,-soname,libkdcam.so.$(SOVERSION) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(KDC_LDLIBS)
	ln -sf libkdcam.so.$(VERSION) $(BUILD)/libkdcam.so.$(SOVERSION)
	ln -sf libkdcam.so.$(SOVERSION) $(BUILD)/libkdcam.so

# kdcam analyze records the commit it was built from (its provenance block)
KDC_COMMIT := $(shell git rev-parse --short=12 HEAD 2>/dev/null)
$(BUILD)/cli/cmd_analyze.o: KDC_CFLAGS += -DKDCAM_COMMIT=\"$(or $(KDC_COMMIT),unknown)\"

$(KDCAM): $(CLI_OBJ) $(STATIC)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $(CLI_OBJ) $(STATIC) $(KDC_LDLIBS)

$(GENW): $(BUILD)/tools/genweights.o $(BUILD)/tests/util/weightgen.o
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ -lm

$(BUILD)/tools/%.o: KDC_CFLAGS += -Itests/util

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(STATIC)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(KDC_LDLIBS)

$(BUILD)/tests/%.o: KDC_CFLAGS += -Itests/util

# Tests see the library's internal headers and link the static library, so
# they can call internal (kdc__) functions as well as the public API.
$(BUILD)/tests/%: $(BUILD)/tests/%.o $(TESTUTIL_OBJ) $(STATIC)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $< $(TESTUTIL_OBJ) $(STATIC) -lcmocka $(KDC_LDLIBS)

test: $(TEST_BIN) $(KDCAM) $(GENW) $(FUZZ_PLAIN)
	@KDCAM=$(KDCAM) BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN)
	@sh tests/fuzz/regress.sh $(FUZZ_PLAIN)
	$(TEST_NEON)

# Fuzzing (docs/security.md). Every tests/fuzz/fuzz_NAME.c defines
# LLVMFuzzerTestOneInput; its seeds are tests/fuzz/corpus/NAME/, its
# dictionary tests/fuzz/NAME.dict, its regression inputs
# tests/fuzz/regress/NAME/. `make test` links each target with a plain
# driver (tests/fuzz/driver.c) and runs every regression file and every
# seed through every target. `make fuzz` builds the libFuzzer binaries with
# clang (build/fuzz/fuzzers/NAME); `make fuzz-smoke` runs each for
# FUZZ_SECONDS.
# The CLI code that fuzz targets call: its JSON reader (no other CLI symbols).
FUZZ_CLI_OBJ = $(filter %/json.o,$(CLI_OBJ))
FUZZ_SECONDS ?= 30
CLANG ?= clang

$(BUILD)/tests/fuzz/%.o: KDC_CFLAGS += -D_GNU_SOURCE -Itests/fuzz -Icli

$(BUILD)/tests/fuzz/plain_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/driver.o \
                             $(FUZZ_CLI_OBJ) $(STATIC)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(KDC_LDLIBS)

$(BUILD)/fuzzers/%: $(BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_CLI_OBJ) $(STATIC)
	@mkdir -p $(@D)
	$(CC) $(SANFLAGS) -fsanitize=fuzzer $(LDFLAGS) -o $@ $^ $(KDC_LDLIBS)

fuzz-targets: $(FUZZ_NAMES:%=$(BUILD)/fuzzers/%)

fuzz:
	+$(MAKE) FUZZ=1 CC=$(CLANG) fuzz-targets

fuzz-smoke: fuzz
	@FUZZ_SECONDS=$(FUZZ_SECONDS) sh tests/fuzz/smoke.sh build/fuzz $(FUZZ_NAMES)

# The NEON kernels: tools/test_neon.sh cross-builds the library, kdcam and
# tests/test_kernels for aarch64 (in build/aarch64), runs the test under
# qemu-user and compares a seeded MobileNetV1 run with the native kdcam's; it
# skips when the cross compiler or qemu is missing. `make test` ends with
# it, except under SAN=1: the cross build has no sanitizers (they do not run
# under qemu-user), so it would only repeat the plain run.
test-neon: $(KDCAM) $(GENW)
	+@MAKE="$(MAKE)" KDCAM=$(KDCAM) GENW=$(GENW) sh tools/test_neon.sh

ifeq ($(SAN),1)
TEST_NEON := @echo "test-neon: skipped under SAN=1 (the plain make test runs it)"
else
TEST_NEON := +@MAKE="$(MAKE)" KDCAM=$(KDCAM) GENW=$(GENW) sh tools/test_neon.sh
endif

check: test

# make demo builds in parallel (one job per core) unless make was given -j
# itself: a serial build of a clean clone took 38 s of its two minutes.
DEMO_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
demo:
	@$(MAKE) --no-print-directory $(if $(filter -j%,$(MAKEFLAGS)),,-j$(DEMO_JOBS)) all
	@sh tools/demo.sh $(BUILD)

BENCH_SRC := $(sort $(wildcard bench/*.c))
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

$(BUILD)/bench/%.o: KDC_CFLAGS += -Itests/util

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(BUILD)/tests/util/weightgen.o $(STATIC)
	$(CC) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(KDC_LDLIBS)

# Benchmarks: never part of `make test`. BENCH_ARGS are passed on.
bench: $(BENCH_BIN) $(KDCAM) $(GENW)
	@BUILD=$(BUILD) BENCH_ARGS="$(BENCH_ARGS)" sh bench/run.sh

# Regenerated on every install: it records PREFIX, which may differ per call.
$(BUILD)/kdcam.pc: kdcam.pc.in FORCE
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' \
	    -e 's|@REQUIRES_PRIVATE@|$(PC_REQUIRES_PRIVATE)|' $< > $@

FORCE:

install: lib $(KDCAM) $(BUILD)/kdcam.pc
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/kdcam.h $(DESTDIR)$(INCLUDEDIR)/kdcam.h
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)/libkdcam.a
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)/libkdcam.so.$(VERSION)
	ln -sf libkdcam.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkdcam.so.$(SOVERSION)
	ln -sf libkdcam.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libkdcam.so
	install -m 755 $(KDCAM) $(DESTDIR)$(BINDIR)/kdcam
	install -m 644 $(BUILD)/kdcam.pc $(DESTDIR)$(PKGCONFIGDIR)/kdcam.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/kdcam.h $(DESTDIR)$(LIBDIR)/libkdcam.a \
	      $(DESTDIR)$(LIBDIR)/libkdcam.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libkdcam.so.$(SOVERSION) \
	      $(DESTDIR)$(LIBDIR)/libkdcam.so $(DESTDIR)$(BINDIR)/kdcam $(DESTDIR)$(PKGCONFIGDIR)/kdcam.pc

clean:
	rm -rf build

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(FUZZ_SRC:%.c=$(BUILD)/%.d) $(TESTUTIL_OBJ:.o=.d) $(TEST_SRC:tests/%.c=$(BUILD)/tests/%.d) $(EX_SRC:examples/%.c=$(BUILD)/examples/%.d)
