# Linker: every target creates .venv and installs what it needs on first use.
# Dependencies come from requirements.lock (exact versions with hashes); `make lock` refreshes
# it after a change to pyproject.toml (tests/unit/test_lock.py fails until it is refreshed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LOCK := requirements.lock

.PHONY: test lint demo load lock screenshots clean fuzz

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(PY) -m pip install --quiet --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

fuzz: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(PY) -m pytest tests/reliability/test_fuzz.py -q

lint: $(STAMP)
	$(VENV)/bin/ruff check linker dashboard pages tests bench
	$(VENV)/bin/mypy linker dashboard pages

demo: $(STAMP)
	$(VENV)/bin/linker demo

# Refresh docs/screenshots/ from the browser tests (needs /usr/bin/chromium).
screenshots: $(STAMP)
	LINKER_SCREENSHOTS=1 $(PY) -m pytest tests/e2e -q $(PYTEST_ARGS)

# Full-size load and crash test (PostgreSQL: LINKER_TEST_POSTGRES_URL must be set).
load: $(STAMP)
	LINKER_LOAD_FULL=1 $(PY) -m pytest tests/reliability -q -s $(PYTEST_ARGS)

# Re-resolve every dependency (runtime + dev) to the newest allowed versions, with hashes.
lock: $(STAMP)
	CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet --generate-hashes \
	  --extra dev --strip-extras --allow-unsafe --no-emit-index-url --no-emit-find-links \
	  --output-file $(LOCK) pyproject.toml

clean:
	rm -rf $(VENV) .linker
