# The front door.  `make run` and `make test` do all set-up on a fresh machine
# (Python 3.11+, make, git): they create .venv and install what is needed.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
SAM_VENV := .venv-sam
SAM    := SAM_CLI_TELEMETRY=0 $(SAM_VENV)/bin/sam
# sam build needs the Lambda runtime's Python (3.13) on PATH; pyenv users get it this way.
SAM_PYENV := $(shell command -v pyenv >/dev/null 2>&1 && pyenv versions --bare 2>/dev/null | grep -E '^3\.13' | head -1)

.PHONY: run test lint build deploy deploy-prod invoke sample bench clean lock openapi

$(VENV)/.installed: pyproject.toml layers/shared/requirements.txt requirements-lock.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c requirements-lock.txt -e '.[dev]'
	touch $@

$(SAM_VENV)/.installed:
	$(PYTHON) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet aws-sam-cli==1.170.0
	touch $@

## run: the API on http://127.0.0.1:3000 (PORT=... to change), embedded AWS, the MiniMax sandbox over HTTP (MINIMAX_API_KEY=... for the real MiniMax)
run: $(VENV)/.installed
	$(PY) -m kyma_local

## test: the whole suite, offline
test: $(VENV)/.installed
	$(PY) -m pytest

## sample: write reference.mp3 (15 s) to try voice cloning against the local stack
sample: $(VENV)/.installed
	$(PY) -m kyma_local.sample reference.mp3

## invoke: one handler on one event, e.g. make invoke FUNCTION=AccountFunction EVENT=events/account-balance.json
invoke: $(VENV)/.installed
	$(PY) -m kyma_local.invoke $(FUNCTION) $(EVENT)

## lint: ruff and mypy over the layer, functions, tools and tests; sam validate --lint (cfn-lint) on template.yaml
lint: $(VENV)/.installed $(SAM_VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(SAM) validate --lint

## openapi: regenerate layers/shared/kyma/openapi.json (the published contract) from tools/kyma_openapi
openapi: $(VENV)/.installed
	$(PY) -m kyma_openapi

## build: sam build without Docker (needs python3.13 on PATH)
build: $(SAM_VENV)/.installed
	$(if $(SAM_PYENV),PYENV_VERSION=$(shell $(PYTHON) -c 'import platform;print(platform.python_version())'):$(SAM_PYENV)) $(SAM) build

deploy: build
	$(SAM) deploy

deploy-prod: build
	$(SAM) deploy --config-env prod

## bench: cold start, AWS calls per request, upload cost; QUICK=1 for the CI budget check
bench: $(VENV)/.installed
	$(PY) bench/run.py $(if $(QUICK),--quick)

## lock: refresh requirements-lock.txt from a clean resolve
lock:
	rm -rf /tmp/kyma-lock && $(PYTHON) -m venv /tmp/kyma-lock
	/tmp/kyma-lock/bin/pip install --quiet '.[dev]'
	/tmp/kyma-lock/bin/pip freeze --exclude kyma-voice-api | grep -v '^-e' > requirements-lock.txt

clean:
	rm -rf $(VENV) $(SAM_VENV) .aws-sam .pytest_cache .kyma-local.json
