"""Local Sphinx extension: keep the built zfbook free of console errors when opened offline.

Sphinx 7.4 with sphinx-thebe puts the inline ``const THEBE_JS_URL = ...`` script into a page's
script list twice; a second ``const`` declaration of the same name is a ``SyntaxError`` in the
browser on every page. On ``html-page-context`` this drops every repeated entry (same file, or
same inline body, and same attributes) from ``script_files``, keeping the first one.

Loaded by ``_config.yml`` (``sphinx.local_extensions``).
"""

from __future__ import annotations

from typing import Any


def _key(js: Any) -> tuple:
    # an inline script's filename is None or "" depending on who added it: treat both alike
    filename = getattr(js, "filename", js) or ""
    attributes = getattr(js, "attributes", {}) or {}
    return (str(filename), tuple(sorted((k, str(v)) for k, v in attributes.items())))


def drop_repeated_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not scripts:
        return
    seen: set[tuple] = set()
    kept = []
    for js in scripts:
        key = _key(js)
        if key in seen:
            continue
        seen.add(key)
        kept.append(js)
    if len(kept) != len(scripts):
        context["script_files"] = kept


def setup(app):
    # run late, after sphinx-thebe, myst-nb etc. have added their scripts
    app.connect("html-page-context", drop_repeated_scripts, priority=900)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
