# The two commands of the README: `make book` renders the book, `make test` runs every test.
# Both create (once) and use the virtual environment .venv with the exact pins of requirements-ci.txt.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: book test chromium

$(STAMP): requirements-ci.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-ci.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

book: $(STAMP)
	PATH=$(VENV)/bin:$$PATH bash book/build.sh

chromium:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "could not install chromium (needs root): the browser test will be skipped"; }

test: book chromium
	ZFBOOK_PROFILE=ci $(PYTHON) -m pytest tests --nbval-lax notebooks
