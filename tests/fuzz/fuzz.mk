# SPDX-License-Identifier: Apache-2.0
# The fuzz targets, built with clang and libFuzzer whatever compiler configure chose. Makefile.am's
# `make fuzz` runs this with the configured build's flags; it is not meant to be run by hand.
# Every tests/fuzz/fuzz_<name>.c is a target: adding one is adding that file (and its seed corpus in
# tests/fuzz/corpus/<name>/). The library sources are compiled again here, instrumented for coverage
# and with AddressSanitizer and UndefinedBehaviorSanitizer, into $(OUT)/obj/.
#
# Passed in by Makefile.am: srcdir, FUZZ_CC, FUZZ_LIB_SOURCES (the library's sources), FUZZ_DEP_CFLAGS,
# FUZZ_LIBS, FUZZ_WARN (the build's warning flags), FUZZ_SYSCONFDIR.

OUT = tests/fuzz-bin
FUZZ_DIR = $(srcdir)/tests/fuzz

TARGETS = $(sort $(patsubst $(FUZZ_DIR)/fuzz_%.c,%,$(wildcard $(FUZZ_DIR)/fuzz_*.c)))
BINS = $(addprefix $(OUT)/fuzz_,$(TARGETS))
LIB_OBJS = $(patsubst %.c,$(OUT)/obj/%.o,$(filter %.c,$(FUZZ_LIB_SOURCES)))
LIB = $(OUT)/libauthgate-fuzz.a

# -Wno-format-nonliteral: clang's -Wformat=2 also flags vsnprintf() on a va_list in a function without a
# format attribute, which gcc (the normal build) accepts; every other warning stays an error.
SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer $(SAN) $(FUZZ_WARN) -Wno-format-nonliteral
FUZZ_CPPFLAGS = -I$(srcdir)/src -I$(FUZZ_DIR) -I. -DSYSCONFDIR='"$(FUZZ_SYSCONFDIR)"' $(FUZZ_DEP_CFLAGS)

# Short lines unless V=1, like the automake build.
ifeq ($(V),1)
Q =
say = @:
else
Q = @
say = @echo
endif

all: $(BINS)
	@echo "fuzz: $(words $(BINS)) targets in $(OUT)/: $(TARGETS)"

# A missing clang or libFuzzer runtime is an error naming the package to install, never a skip: link
# an empty target to find out.
check-cc:
	@command -v $(FUZZ_CC) >/dev/null 2>&1 || { \
	    echo "fuzz: $(FUZZ_CC) not found; on Debian 12: apt-get install clang libclang-rt-14-dev" >&2; exit 1; }
	@mkdir -p $(OUT)
	@printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' \
	    >$(OUT)/probe.c
	@$(FUZZ_CC) $(SAN) -fsanitize=fuzzer $(OUT)/probe.c -o $(OUT)/probe || { \
	    echo "fuzz: $(FUZZ_CC) cannot link libFuzzer; on Debian 12: apt-get install libclang-rt-14-dev" >&2; \
	    exit 1; }
	@rm -f $(OUT)/probe $(OUT)/probe.c

$(LIB_OBJS): | check-cc

$(OUT)/obj/%.o: $(srcdir)/%.c
	@mkdir -p $(@D)
	$(say) "  FUZZCC   $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(say) "  FUZZAR   $@"
	$(Q)ar cr $@ $(LIB_OBJS)

$(OUT)/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(LIB)
	$(say) "  FUZZLD   $@"
	$(Q)$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer -MMD -MP $< $(LIB) $(FUZZ_LIBS) -o $@

.PHONY: all check-cc
-include $(LIB_OBJS:.o=.d) $(BINS:=.d)
