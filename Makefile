# Thin wrapper over CMake. `make demo` and `make test` are all a newcomer needs.
BUILD ?= build
BUILD_SAN ?= build-san
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# Sizes for the sanitizer run of the suite (tests read AG_TEST_SCALE).
SAN_SCALE ?= 0.25

.PHONY: all deps build build-san test test-fast test-san demo bench format format-check lint clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

$(BUILD_SAN)/CMakeCache.txt:
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DAG_SANITIZE=ON

build-san: $(BUILD_SAN)/CMakeCache.txt
	cmake --build $(BUILD_SAN) -j $(JOBS)

# The whole suite twice: a normal build, then ASan + UBSan + LeakSanitizer.
test: deps
	$(MAKE) test-fast
	$(MAKE) test-san

# ctest -j runs two test programs on two cores: OpenMP threads that spin while
# waiting would slow each other 3-4x, so tests wait passively.
test-fast: build
	cd $(BUILD) && OMP_WAIT_POLICY=passive ctest --output-on-failure -j $(JOBS)

test-san: build-san
	cd $(BUILD_SAN) && AG_TEST_SCALE=$(SAN_SCALE) OMP_WAIT_POLICY=passive \
	  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

demo: deps build
	bash scripts/demo.sh $(BUILD)/agora

bench: deps build
	bash scripts/bench.sh $(BUILD)

SOURCES = $(shell git ls-files '*.c' '*.h' 2>/dev/null)

format:
	clang-format -i $(SOURCES)

format-check:
	clang-format --dry-run --Werror $(SOURCES)

# Lint: cppcheck, clang-format, and a warnings-as-errors clang build.
lint: build
	CC=clang cmake -S . -B build-clang -DCMAKE_BUILD_TYPE=Release -DAG_WERROR=ON >/dev/null
	cmake --build build-clang -j $(JOBS)
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability,performance \
	  --std=c11 --inline-suppr -I include -I src --suppress=missingIncludeSystem \
	  src include
	$(MAKE) format-check

clean:
	rm -rf $(BUILD) $(BUILD_SAN)
