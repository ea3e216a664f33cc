# The front door.  `make run` and `make test` do all set-up on a fresh machine
# (Python 3.11+, make, git): they create .venv and install what is needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM    := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# sam build needs the Lambda runtime's Python (3.13) on PATH; pyenv users get it this way.
SAM_PYENV := $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -E '^3\.13' | head -1)

.PHONY: run test test-py313 lint build deploy deploy-prod invoke sample bench clean lock openapi sam-local

$(VENV)/.installed: pyproject.toml layers/shared/requirements.in requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements-lock.txt -e '.[dev]'
	touch $@

# The integration tier also runs on Lambda's Python (3.13): python3.13 on PATH, or pyenv's.
PY313 ?= $(if $(SAM_PYENV),$(shell pyenv root)/versions/$(SAM_PYENV)/bin/python3.13,python3.13)
VENV313 := .venv-py313
$(VENV313)/.installed: pyproject.toml layers/shared/requirements.in requirements-lock.txt
	$(PY313) -m venv $(VENV313)
	$(VENV313)/bin/python -m pip install --quiet --upgrade pip
	$(VENV313)/bin/python -m pip install --quiet -c requirements-lock.txt -e '.[dev]'
	touch $@

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0
	touch $@

## run: the API on http://127.0.0.1:3000 (PORT=... to change), embedded AWS, the MiniMax sandbox over HTTP (MINIMAX_API_KEY=... for the real MiniMax)
run: $(VENV)/.installed
	$(PY) -m kyma_local

# The suite in TEST_WORKERS parallel workers (pytest-xdist, a test file at a time: a file's fixtures
# stay in one process), then the IAM grant check on its own, over every AWS call the workers and
# their local stacks recorded (the two files named here; tests/conftest.py).  A plain `pytest`
# runs everything in one process, the grant check last.  Three workers on two cores: the tests wait
# on sockets, sleeps and subprocess stacks more than on the CPU (measured: 2 workers 801 s, 3 642 s).
TEST_WORKERS ?= 3
GRANTS := tests/integration/test_iam_grants.py
define parallel_tests
	@calls=$$(mktemp -d); trap 'rm -rf "$$calls"' EXIT; \
	export KYMA_AWS_CALLS_FILE=$$calls/stacks.jsonl KYMA_TEST_WORKER_CALLS_FILE=$$calls/workers.jsonl; \
	echo "$(1) -m pytest -n $(TEST_WORKERS) --dist loadfile -m 'not aws_grants' $(2)"; \
	$(1) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not aws_grants" $(2) && \
	echo "$(1) -m pytest $(GRANTS)" && $(1) -m pytest $(GRANTS)
endef

## test: the whole suite, offline (TEST_WORKERS=3 processes; the IAM grant check after them)
test: $(VENV)/.installed
	$(call parallel_tests,$(PY),)

## test-py313: the integration tier on Python 3.13, Lambda's runtime (.venv-py313)
test-py313: $(VENV313)/.installed
	$(call parallel_tests,$(VENV313)/bin/python,tests/integration)

## sample: write reference.mp3 (15 s) to try voice cloning against the local stack
sample: $(VENV)/.installed
	$(PY) -m kyma_local.sample reference.mp3

## invoke: one handler on one event, e.g. make invoke FUNCTION=AccountFunction EVENT=events/account-balance.json
invoke: $(VENV)/.installed
	$(PY) -m kyma_local.invoke $(FUNCTION) $(EVENT)

## lint: ruff, mypy and import-linter (the layer's wings import downwards) over the layer, functions, tools and tests; sam validate --lint (cfn-lint) on template.yaml
lint: $(VENV)/.installed $(SAM_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(SAM) validate --lint

## openapi: regenerate layers/shared/kyma/edge/openapi.json (the published contract) from tools/kyma_openapi
openapi: $(VENV)/.installed
	$(PY) -m kyma_openapi

## build: sam build without Docker (needs python3.13 on PATH)
# sam build's `pip download -r layers/shared/requirements.txt` checks every file against the lock's
# hashes.  Aimed at the Lambda platform, it fetches the arm64 wheels themselves; otherwise
# lambda-builders re-fetches platform wheels (charset-normalizer's) by name, outside hash checking.
LAYER_PIP_ENV := PIP_PLATFORM=manylinux2014_aarch64 PIP_ONLY_BINARY=:all: PIP_IMPLEMENTATION=cp \
	PIP_PYTHON_VERSION=3.13 PIP_ABI=cp313
build: $(SAM_VENV)/.installed
	$(LAYER_PIP_ENV) $(if $(SAM_PYENV),PYENV_VERSION=$(shell $(PYTHON) -c 'import platform;print(platform.python_version())'):$(SAM_PYENV)) $(SAM) build

## sam-local: the built artifact under the real SAM CLI in Docker (x86_64): `sam local invoke` of every
## zip function on its event and `sam local start-api` driven by curl, every answer checked.  Installs and
## starts Docker if absent; builds the python3.13 base image offline if it cannot be pulled (PORT=... for start-api)
sam-local: $(VENV)/.installed build
	tools/sam-local/docker.sh
	PY313=$(PY313) tools/sam-local/base-image.sh x86_64
	$(PY) -m kyma_local.sam_local

deploy: build
	$(SAM) deploy

deploy-prod: build
	$(SAM) deploy --config-env prod

## bench: cold start, AWS calls per request, upload cost; QUICK=1 for the CI budget check
bench: $(VENV)/.installed
	$(PY) bench/run.py $(if $(QUICK),--quick)

## lock: both locks from a clean resolve.  layers/shared/requirements.txt: requirements.in with every
## indirect dependency, pinned with hashes for the Lambda runtime (python3.13, arm64; uv resolves for
## that platform).  requirements-lock.txt: the dev .venv (pyproject's dev extras), at the layer's versions.
UV_VERSION := 0.13.8
LAYER_LOCK := layers/shared/requirements.txt
lock:
	rm -rf /tmp/kyma-lock /tmp/kyma-uv && $(PYTHON) -m venv /tmp/kyma-uv && $(PYTHON) -m venv /tmp/kyma-lock
	/tmp/kyma-uv/bin/pip install --quiet uv==$(UV_VERSION)
	/tmp/kyma-uv/bin/uv pip compile --quiet layers/shared/requirements.in --upgrade --generate-hashes \
	  --python-platform aarch64-manylinux2014 --python-version 3.13 \
	  --custom-compile-command 'make lock' --output-file $(LAYER_LOCK)
	sed -n 's/^\([A-Za-z0-9._-]*==[^ ]*\).*/\1/p' $(LAYER_LOCK) > /tmp/kyma-lock/layer-pins.txt
	/tmp/kyma-lock/bin/pip install --quiet -c /tmp/kyma-lock/layer-pins.txt '.[dev]'
	/tmp/kyma-lock/bin/pip freeze --exclude kyma-voice-api | grep -v '^-e' > requirements-lock.txt

clean:
	rm -rf $(VENV) $(SAM_VENV) $(VENV313) .aws-sam .pytest_cache .kyma-local.json
