# The two commands of the README: `make book` renders the book, `make test` runs every test.
# `make book` creates (once) and uses the light virtual environment .venv-book (the pins of requirements-book.txt:
# Jupyter Book, no torch: the build shows the notebooks' stored outputs and never imports zfcore);
# `make test` also creates .venv with the exact pins of requirements-ci.txt.
VENV ?= .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BOOK_VENV ?= .venv-book
BOOK_STAMP := $(BOOK_VENV)/.installed

.PHONY: book test chromium

$(STAMP): requirements-ci.txt pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet --disable-pip-version-check -r requirements-ci.txt
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

$(BOOK_STAMP): requirements-book.txt
	test -x $(BOOK_VENV)/bin/python || python3 -m venv $(BOOK_VENV)
	$(BOOK_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements-book.txt
	touch $(BOOK_STAMP)

book: $(BOOK_STAMP)
	PATH=$(BOOK_VENV)/bin:$$PATH bash book/build.sh

chromium:
	@test -x /usr/bin/chromium || { echo "installing Debian's chromium for the browser test"; \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || echo "could not install chromium (needs root): the browser test will be skipped"; }

test: book chromium $(STAMP)
	ZFBOOK_PROFILE=ci $(PYTHON) -m pytest tests --nbval-lax notebooks
