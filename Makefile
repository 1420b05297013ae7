# Thin wrapper around CMake. `make demo` and `make test` are the quick start.
BUILD       ?= build
BUILD_ASAN  ?= build-asan
BUILD_NOSIMD ?= build-nosimd
BUILD_FUZZ  ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
# Quiet recursive makes: no "Entering/Leaving directory" lines.
MAKEFLAGS   += --no-print-directory
# CMake configures quietly (warnings and errors only); V=1 shows everything.
CMAKE_QUIET := $(if $(V),,--log-level=WARNING)
# Ninja (installed with the build's packages) prints one progress line that
# it redraws on a terminal; without it CMake's Makefiles are used.
CMAKE_GEN    = $(if $(shell command -v ninja 2>/dev/null),-G Ninja,)

.PHONY: demo-gpt all build deps-build install docs test test-long test-asan test-nosimd test-valgrind fuzz bench demo deps format format-check clean

all: build

# The packages the build itself needs (compiler, CMake, pkg-config, cJSON):
# installed with apt-get when missing, so that `make` and `make test` work
# alone on a fresh Debian 12 machine. Checking costs a few dpkg queries.
deps-build:
	@bash scripts/install-deps --build

$(BUILD)/CMakeCache.txt: | deps-build
	@echo "configuring $(BUILD)/ (cmake)"
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_GEN) $(CMAKE_QUIET) $(CMAKE_FLAGS)

build: deps-build $(BUILD)/CMakeCache.txt
	@cmake --build $(BUILD) -j $(JOBS)

# The default suite (everything but the long, exhaustive tests).
test: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -LE long

# Exhaustive tests (all 2^32 floats through every conversion, ...).
test-long: build
	cd $(BUILD) && ctest --output-on-failure -L long

# The default suite built with AddressSanitizer + UndefinedBehaviorSanitizer.
test-asan: deps-build
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DAMPC_SANITIZE=ON $(CMAKE_GEN) $(CMAKE_QUIET) $(CMAKE_FLAGS)
	cmake --build $(BUILD_ASAN) -j $(JOBS)
	cd $(BUILD_ASAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure -j $(JOBS) -LE long

# The default suite built without any x86 intrinsics.
test-nosimd: deps-build
	cmake -S . -B $(BUILD_NOSIMD) -DCMAKE_BUILD_TYPE=Release -DAMPC_SIMD=OFF $(CMAKE_GEN) $(CMAKE_QUIET) $(CMAKE_FLAGS)
	cmake --build $(BUILD_NOSIMD) -j $(JOBS)
	cd $(BUILD_NOSIMD) && ctest --output-on-failure -j $(JOBS) -LE long

# libFuzzer (clang, with ASan + UBSan): the safetensors reader, the IDX
# parser and the resume path of a checkpoint (configuration allow-list and
# amp_checkpoint_load), FUZZ_SECONDS each, from the seeds in
# tests/fuzz/corpus. Built without the SIMD kernels, which the harnesses do
# not reach.
fuzz:
	@bash scripts/install-deps --fuzz
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DAMPC_FUZZ=ON -DAMPC_SIMD=OFF $(CMAKE_GEN) $(CMAKE_QUIET) $(CMAKE_FLAGS)
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target fuzz_safetensors fuzz_idx fuzz_checkpoint
	bash scripts/fuzz $(BUILD_FUZZ) $(FUZZ_SECONDS)

# valgrind memcheck on the end-to-end training test (synthetic data; the
# real-MNIST part is skipped to keep it short): no leaks, no invalid access.
test-valgrind: build
	@bash scripts/install-deps --valgrind
	AMPC_MNIST_DIR=/nonexistent valgrind --leak-check=full --errors-for-leak-kinds=definite \
	  --error-exitcode=3 $(BUILD)/test_train

# Every package of every target (what CI installs).
# Installs the header, libraries, tool, ampc.pc and the CMake package under
# PREFIX (default /usr/local); DESTDIR=D stages the install under D.
PREFIX ?= /usr/local
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

deps:
	bash scripts/install-deps

bench: build
	@bash scripts/install-deps --bench
	$(BUILD)/ampc bench all --threads 2
	bash bench/train.sh $(BUILD)/ampc 2
	bash bench/fp8.sh $(BUILD)/ampc 2
	bash bench/models.sh $(BUILD)/ampc 2

# HTML reference of include/ampc.h (Doxygen), grouped by layer, in
# $(BUILD)/docs/html/index.html. Any warning (an undocumented symbol
# included) fails the target.
docs:
	@bash scripts/install-deps --docs
	@mkdir -p $(BUILD)/docs
	AMPC_DOCS_OUT=$(BUILD)/docs doxygen docs/Doxyfile
	@echo "docs: $(BUILD)/docs/html/index.html"

# Fetch MNIST, build, train the reference MLP in FP32 and FP16, side by side.
demo:
	bash scripts/install-deps --demo --if-missing
	$(MAKE) build
	BUILD=$(BUILD) bash scripts/demo

format:
	@bash scripts/install-deps --format
	clang-format -i $$(git ls-files '*.c' '*.h')

format-check:
	@bash scripts/install-deps --format
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_NOSIMD) $(BUILD_FUZZ)

# The default GPT (gpt:layers=4,dim=128,heads=4,ctx=64; 0.83 M parameters) on
# the fortunes corpus in fp16 mixed precision with AdamW: about 2 M tokens
# (2000 steps of 16 x 64 bytes; about 10 minutes on 2 busy cores), the train
# and validation loss every 250 steps, then a sample of the trained model.
DEMO_GPT_STEPS ?= 2000
demo-gpt: build
	$(BUILD)/ampc train --model gpt --data fortunes --precision fp16 --optim adamw --lr 3e-3 \
	  --schedule cosine:100 --clip 1 --batch 16 --steps $(DEMO_GPT_STEPS) --eval-every 250 \
	  --threads 2 --save $(BUILD)/demo-gpt.ckpt
	$(BUILD)/ampc sample --checkpoint $(BUILD)/demo-gpt.ckpt --prompt "The " --tokens 300 \
	  --temperature 0.8 --top-k 40 --seed 1
