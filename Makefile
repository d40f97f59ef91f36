# The one entry point. `make run` serves the whole suite; `make test` proves it.
# Both install what they need: a virtualenv in .venv, the pinned packages, generated code.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
GEN_STAMP := gen/.generated
PROTOS := $(shell find protos -name '*.proto')

.PHONY: setup proto lint run seed test test-fast chaos bench dlq clean

setup: $(INSTALLED) $(GEN_STAMP)

# requirements.txt is what runs in production (the image installs only it);
# requirements-dev.txt adds code generation, the embedded servers, lint and tests.
$(INSTALLED): requirements.txt requirements-dev.txt constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints.txt
	# The repo root and the generated code are importable from the virtualenv.
	echo "$(CURDIR)" > $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/siyu.pth
	echo "$(CURDIR)/gen" >> $$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/siyu.pth
	touch $@

# google/api/*.proto comes from googleapis-common-protos, copied so buf needs no registry.
$(GEN_STAMP): $(PROTOS) $(INSTALLED)
	rm -rf gen build/proto-deps
	mkdir -p gen build/proto-deps/google/api
	cp $$($(BIN)/python -c 'import google.api.annotations_pb2 as m, os; print(os.path.dirname(m.__file__))')/{annotations,http,httpbody}.proto build/proto-deps/google/api/
	# gen/descriptors.binpb keeps the proto comments (source info): the gateway's OpenAPI
	# document takes its descriptions of RPCs, fields and error reasons from them.
	$(BIN)/python -m grpc_tools.protoc -Iprotos -Ibuild/proto-deps --python_out=gen --pyi_out=gen --grpc_python_out=gen \
		--include_source_info --include_imports --descriptor_set_out=gen/descriptors.binpb $(PROTOS)
	touch $@

proto: $(GEN_STAMP)

lint: setup
	$(BIN)/buf lint
	$(BIN)/ruff check siyu_kit services gateway scripts tests bench wechat_standin

run: setup
	$(BIN)/python -m scripts.run

seed: setup
	$(BIN)/python -m scripts.seed

# Two worker processes (pytest-xdist), each starting its own suite on free ports
# (tests/conftest.py); a file stays on one worker, so a module's merchant is seeded once.
# Files go out in collection order, not most-tests-first: the slowest files (the API fuzz,
# the races) have few tests and would otherwise run last on one worker while the other idles.
# TEST_WORKERS=0 runs everything in this one process. The 30 slowest tests are listed at
# the end, so a run that grows past its time shows where.
TEST_WORKERS ?= 2
test: setup lint
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m "not chaos" --durations=30

# The slow failure scenarios `make test` leaves out to keep within its time (bounded: a few
# minutes on 2 cores): processes killed mid-purchase, the database down under load, crowds
# racing expiries. Run them after a change to reservations, payments or the relay.
chaos: setup
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder -m chaos

test-fast: setup
	$(BIN)/python -m pytest tests/unit

# A fresh suite on free ports (data under var/bench/run); results in var/bench/*.json.
# `make bench ARGS=browse` runs one scenario.
bench: setup
	$(BIN)/python -m bench $(ARGS)

# Against the suite `make run` started, unless SIYU_NATS_URL says otherwise.
dlq: setup
	SIYU_NATS_URL=$${SIYU_NATS_URL:-nats://127.0.0.1:4322} $(BIN)/python -m siyu_kit.events.dlq $(ARGS)

clean:
	rm -rf gen build .pytest_cache
