# embedapt: the two commands a new user runs are `make demo` and `make test`.
BUILD ?= build
JOBS ?= $(shell nproc)
CMAKE_FLAGS ?=
# New build directories use Ninja, which compiles a module's files while the
# modules it links are still compiling (Make's generator waits for them): a
# clean build of the CLI keeps both cores busy instead of waiting on the
# LibTorch files. An existing directory keeps the generator it was made with.
export CMAKE_GENERATOR ?= Ninja

.PHONY: all deps models build faiss-avx2 python test demo bench sanitize tsan fuzz-build fuzz crashtest format tidy clean milvus-venv \
  milvus-check

all: build

deps:
	@tools/install-deps.sh

models:
	@tools/fetch-model.sh models/all-MiniLM-L6-v2

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: deps $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS)

# `make faiss-avx2`: FAISS with AVX2/FMA kernels, compiled once from Debian's
# source package of the installed libfaiss-dev into ~/.cache/embedapt-faiss (minutes:
# tools/build-faiss.sh), then linked into $(BUILD) instead of the system's
# baseline x86-64 libfaiss.a (EMBEDAPT_FAISS_PREFIX). Where the CPU lacks AVX2 or FMA
# the system's stays. `make bench` does this; `make test` does not (compiling
# FAISS would take a fresh machine close to its time budget) but passes with either.
faiss-avx2: deps $(BUILD)/CMakeCache.txt
	prefix=$$(tools/build-faiss.sh) && cmake -S . -B $(BUILD) -DEMBEDAPT_FAISS_PREFIX="$$prefix"

# `make python`: the project's virtual environment ($(VENV)) with the pinned
# requirements and the binding (pip install ./plugin/python), which links the
# libraries of $(BUILD) instead of compiling them a second time.
VENV ?= .venv
python: build
	test -x $(VENV)/bin/python || /usr/bin/python3 -m venv $(VENV)
	$(VENV)/bin/pip install -q -r plugin/python/requirements.txt
	CMAKE_BUILD_PARALLEL_LEVEL=$(JOBS) $(VENV)/bin/pip install -q --no-build-isolation --no-deps \
	  --config-settings=cmake.define.EMBEDAPT_BUILD_DIR=$(abspath $(BUILD)) \
	  --config-settings=build-dir=$(abspath $(BUILD))/python ./plugin/python

test: deps models build milvus-venv python fuzz-build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SLICE_SECONDS) $(FUZZ_SLICE_RUNS)
	EMBEDAPT_CLI=$(abspath $(BUILD))/bin/embedapt $(VENV)/bin/python -m pytest -q plugin/python/tests

# The embedded Milvus server the Milvus tests start (tools/milvus/serve.py).
MILVUS_VENV = $(BUILD)/milvus-venv
milvus-venv: $(MILVUS_VENV)/.installed
$(MILVUS_VENV)/.installed: tools/milvus/requirements.txt
	python3 -m venv $(MILVUS_VENV)
	$(MILVUS_VENV)/bin/pip install -q -r tools/milvus/requirements.txt
	touch $@

# The Milvus checks on the shared 10-K data (minutes: it embeds ~2400 texts once).
milvus-check: deps models milvus-venv $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target embedapt_cli
	tools/milvus/check_10k.sh $(BUILD)

# The demo builds only the CLI it runs; `make test` builds the tests.
demo:
	@echo "make demo: installs missing system packages, fetches the default model, builds the embedapt CLI"
	@echo "(not the tests) into $(BUILD)/, then runs tools/demo.sh: a store from vectors (embed, ingest, search,"
	@echo "inspect), then adapters trained on the questions about the first 150 chunks of Lyft's 10-K and"
	@echo "evaluated on those of Uber's."
	@$(MAKE) --no-print-directory deps models $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j $(JOBS) --target embedapt_cli
	tools/demo.sh $(BUILD)

# The benchmark builds only what it runs (not the tests), against the AVX2/FMA
# FAISS where the CPU has them (faiss-avx2); its reported time includes that build.
bench: deps models faiss-avx2
	start=$$(date +%s) && cmake --build $(BUILD) -j $(JOBS) --target embedapt_cli store_bench hnsw_bench faiss_bench encoder_bench retrain_bench filter_bench smalllogs_bench peers_bench && \
	BENCH_START=$$start tools/bench/run.sh $(BUILD)

# `make sanitize` (ASan+UBSan, in build-asan) or `make sanitize SAN=thread`
# (TSan, in build-tsan): a Debug build with the sanitizer, then every test.
SAN ?= address
SAN_BUILD = build-$(if $(filter thread,$(SAN)),tsan,asan)
sanitize: deps models
	cmake -S . -B $(SAN_BUILD) -DEMBEDAPT_SANITIZE=$(SAN) -DCMAKE_BUILD_TYPE=Debug
	@$(MAKE) --no-print-directory milvus-venv BUILD=$(SAN_BUILD)
	cmake --build $(SAN_BUILD) -j $(JOBS)
	cd $(SAN_BUILD) && ctest --output-on-failure -j $(JOBS)

# `make tsan`: the tests that run threads against one store or cache
# (background retraining beside searches and writes; searches, writes and
# adapter swaps at once; the process-wide BLAS cap; the embedding cache's
# open/close race) under ThreadSanitizer, in build-tsan (Debug), building only
# what they link. Minutes, so not part of `make test`; `make sanitize
# SAN=thread` runs every test.
TSAN_TESTS = test_background_retrain test_store_concurrency test_compute_threads test_cache
empty :=
space := $(empty) $(empty)
tsan: deps
	cmake -S . -B build-tsan -DEMBEDAPT_SANITIZE=thread -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-tsan -j $(JOBS) --target $(TSAN_TESTS)
	cd build-tsan && ctest --output-on-failure -L '^($(subst $(space),|,$(TSAN_TESTS)))$$'

# libFuzzer harnesses (tests/fuzz/), built by clang with ASan+UBSan in
# build-fuzz. `make fuzz` runs each for FUZZ_SECONDS (10 harnesses x 70 s:
# over 10 minutes); `make test` runs FUZZ_SLICE_RUNS seeded inputs of each
# (the same on every machine, so a CI run is reproducible), at most
# FUZZ_SLICE_SECONDS.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 70
FUZZ_SLICE_SECONDS ?= 30
FUZZ_SLICE_RUNS ?= 64
fuzz-build: deps build
	cmake -S tests/fuzz -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
	  -DEMBEDAPT_BUILD_DIR=$(abspath $(BUILD))
	cmake --build $(FUZZ_BUILD) -j $(JOBS)

fuzz: fuzz-build
	tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

# The crash test at 8x the kills of its `make test` slice (over 200 writer
# kills across Flat, HNSW and IVF stores, plus kills during recovery).
crashtest: deps build
	EMBEDAPT_CRASH_SCALE=8 $(BUILD)/bin/test_crash "[crash]"

format:
	@tools/install-deps.sh lint
	clang-format -i $$(git ls-files '*.cpp' '*.h')

# clang-tidy reads the compile commands of a build directory configured
# without the precompiled LibTorch header (GCC's, which clang cannot read).
# `make tidy` runs clean: every check of .clang-tidy, on every .cpp.
tidy:
	@tools/install-deps.sh lint
	cmake -S . -B build-tidy -DCMAKE_DISABLE_PRECOMPILE_HEADERS=ON > /dev/null
	run-clang-tidy -quiet -p build-tidy $$(git ls-files '*.cpp')

clean:
	rm -rf $(BUILD) $(FUZZ_BUILD)
