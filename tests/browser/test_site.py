"""Open every page of the built book in headless Chromium, offline, and check it works.

What is checked, per HTML page of ``_build/html`` (served from a local ``http.server`` thread):

- no JavaScript console errors and no uncaught exceptions;
- no failed requests (HTTP >= 400 or network errors) and no request leaving localhost (they are
  blocked, so a CDN script, font or stylesheet shows up as a failure: the site must work offline);
- every ``<img>`` loaded (``naturalWidth > 0``);
- Markdown tables that code cells display are tables, not paragraphs of ``|`` text;
- math rendered by the vendored MathJax (an ``mjx-container`` per math element);
- saved ipywidgets state rendered by the vendored widget manager;
- every static slider (``input[type=range]`` inside ``.animation``, i.e. matplotlib's
  ``Animation.to_jshtml()``) changes the frame shown when moved;
- every figure of a chapter (an image in a cell's output) is legible at the column's width: its
  smallest text, as the reader sees it, is at least ``LEGIBLE_PX`` CSS px tall. A figure's PNG
  records the height of its smallest text in image pixels (``zfcore.plots.style.book_png``); a static
  slider's ``div`` records it for its frames (``data-smallest-text-px``); the test scales that by the
  image's displayed width over its natural width. A figure without the record fails (it was not drawn
  by ``zfcore.plots.use_book_style()``);
- no table is wider than the text column (no sideways scroll bar hiding columns);
- every internal link (``a[href]`` not starting with ``http``, ``mailto:`` or ``#``) answers HTTP 200.

A screenshot of each page's first screen goes to ``_build/screenshots/<page>.png`` (beside the site,
not inside it: the screenshots are never published).

Running it::

    book/build.sh                                   # builds _build/html
    pytest tests/browser -v                         # skips if no build, no Playwright or no Chromium
    ZFBOOK_REQUIRE_BROWSER=1 pytest tests/browser   # CI: those skips become failures

Environment variables: ``ZFBOOK_REQUIRE_BROWSER=1`` (skips are failures), ``ZFBOOK_SITE_DIR`` (the
built site, default ``<repo>/_build/html``), ``ZFBOOK_CHROMIUM`` (default ``/usr/bin/chromium``),
``ZFBOOK_BROWSER_TIMEOUT`` (seconds for each page load or wait, default 120: generous, since a busy
CPU slows Chromium down a lot).

How CI gets the browser: Debian's Chromium package, driven by the ``playwright`` Python package
through ``executable_path`` (``playwright install`` is NOT used: it downloads a browser from the
internet)::

    apt-get update && apt-get install -y chromium chromium-driver   # ~40 s; gives /usr/bin/chromium
    pip install playwright pytest
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import socketserver
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SITE = Path(os.environ.get("ZFBOOK_SITE_DIR", REPO / "_build" / "html")).resolve()
CHROMIUM = os.environ.get("ZFBOOK_CHROMIUM", "/usr/bin/chromium")
REQUIRE = os.environ.get("ZFBOOK_REQUIRE_BROWSER", "") == "1"
TIMEOUT_MS = int(float(os.environ.get("ZFBOOK_BROWSER_TIMEOUT", "120")) * 1000)  # per wait
SCREENSHOTS = SITE.parent / "screenshots"  # _build/screenshots: outside the published site
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 800}
LEGIBLE_PX = 9.0  # the smallest text a figure may show, in CSS px, at VIEWPORT's width
NO_BUILD = "(no built site)"
META_REFRESH = re.compile(
    r'<meta[^>]+http-equiv=["\']refresh["\'][^>]*content=["\'][^"\']*url=([^"\'>\s]+)', re.IGNORECASE
)


def _skip(reason: str) -> None:
    """Skip, or fail when ZFBOOK_REQUIRE_BROWSER=1 (CI must not pass by skipping)."""
    if REQUIRE:
        pytest.fail(f"{reason} (and ZFBOOK_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


def _pages() -> list[str]:
    """Every HTML page of the site, relative to it; theme/asset folders (starting with _) excluded."""
    if not (SITE / "index.html").is_file():
        return []
    pages = []
    for path in sorted(SITE.rglob("*.html")):
        rel = path.relative_to(SITE)
        if any(part.startswith("_") for part in rel.parts[:-1]):
            continue  # _static/, _sources/, _images/ ...
        pages.append(rel.as_posix())
    return pages


PAGES = _pages()


# --------------------------------------------------------------------------------------- fixtures
class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        pass


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture(scope="module")
def site_url():
    if not PAGES:
        _skip(f"no built book at {SITE} (run book/build.sh first)")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = _Server(("127.0.0.1", 0), handler)  # port 0: a free port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser_context(site_url):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip("the playwright Python package is not installed (pip install playwright)")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="zfbook-chromium-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,  # a fresh --user-data-dir
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport=VIEWPORT,
        )
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        context.blocked = []  # requests that tried to leave localhost, as "page-url -> url"

        def offline(route):
            url = route.request.url
            if url.startswith(site_url) or url.startswith(("data:", "blob:", "about:")):
                route.continue_()
            else:
                context.blocked.append(url)
                route.abort("internetdisconnected")

        context.route("**/*", offline)
        try:
            yield context
        finally:
            context.close()


@functools.lru_cache(maxsize=None)
def _http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


# ------------------------------------------------------------------------------------- page checks
JS_WAIT_IMAGES = """async (timeoutMs) => {
    const imgs = [...document.images];
    await Promise.all(imgs.map(img => {
        if (img.loading === 'lazy') img.loading = 'eager';
        if (img.complete) return null;
        return new Promise(done => {
            img.addEventListener('load', done, {once: true});
            img.addEventListener('error', done, {once: true});
            setTimeout(done, timeoutMs);
        });
    }));
    return imgs.filter(img => !(img.complete && img.naturalWidth > 0))
               .map(img => (img.getAttribute('src') || '').slice(0, 120));
}"""

JS_MATHJAX_DONE = """async () => {
    if (!(window.MathJax && MathJax.startup && MathJax.startup.promise)) return null;
    await MathJax.startup.promise;
    if (MathJax.startup.document && MathJax.typesetPromise) await MathJax.typesetPromise();
    return document.querySelectorAll('mjx-container').length;
}"""

JS_INTERNAL_LINKS = """() => [...document.querySelectorAll('a[href]')]
    .filter(a => {
        const h = a.getAttribute('href').trim();
        return h && !/^(https?:|mailto:|#|javascript:|data:)/i.test(h);
    })
    .map(a => a.href.split('#')[0])"""


JS_FIGURES = """() => [...document.querySelectorAll('.cell_output img')].map(img => {
    const slider = img.closest('[data-smallest-text-px]');
    return {src: img.getAttribute('src') || '', url: img.src, natural: img.naturalWidth,
            shown: img.getBoundingClientRect().width, animation: !!img.closest('.animation'),
            slider_text_px: slider ? slider.getAttribute('data-smallest-text-px') : null};
})"""

JS_WIDE_TABLES = """() => [...document.querySelectorAll('article table')].map(table => {
    let box = table.parentElement;  // the nearest ancestor that scrolls (or clips) sideways
    while (box && getComputedStyle(box).overflowX === 'visible') box = box.parentElement;
    const width = box ? box.clientWidth : document.documentElement.clientWidth;
    return {columns: table.rows.length ? table.rows[0].cells.length : 0, table: table.scrollWidth, width: width,
            scrolled: box ? box.scrollWidth : 0, head: (table.rows.length ? table.rows[0].innerText : '').slice(0, 60)};
}).filter(t => t.table > t.width || t.scrolled > t.width)"""


def _image_bytes(src: str, url: str, site_url: str) -> bytes:
    """The bytes of an ``<img>``: a data: URI decoded, or the file of the built site it names."""
    if src.startswith("data:"):
        import base64

        header, _, data = src.partition(",")
        return base64.b64decode(data) if header.endswith(";base64") else urllib.parse.unquote_to_bytes(data)
    path = urllib.parse.unquote(urllib.parse.urlsplit(url).path)
    return (SITE / path.removeprefix(urllib.parse.urlsplit(site_url).path)).read_bytes()


def figure_problems(figures: list[dict], site_url: str) -> list[str]:
    """Figures whose smallest text is below LEGIBLE_PX CSS px as displayed, or that do not record it.

    Args:
        figures: what JS_FIGURES returns for a page.
        site_url: the URL the site is served at.
    """
    from zfcore.plots.style import png_text_px

    problems = []
    for index, figure in enumerate(figures):
        name = f"figure {index + 1} ({figure['src'][:60]})"
        if not figure["natural"] or not figure["shown"]:
            continue  # not loaded (reported as such) or not displayed
        if figure["animation"]:
            if figure["slider_text_px"] is None:
                problems.append(f"{name}: a static slider without data-smallest-text-px (not zfcore.widgets)")
                continue
            text_px = None if figure["slider_text_px"] == "none" else float(figure["slider_text_px"])
        else:
            try:
                text_px = png_text_px(_image_bytes(figure["src"], figure["url"], site_url))
            except ValueError as error:
                problems.append(f"{name}: no record of its smallest text ({error}): draw it after "
                                "zfcore.plots.use_book_style()")
                continue
        if text_px is None:
            continue  # draws no text
        shown = text_px * figure["shown"] / figure["natural"]
        if shown < LEGIBLE_PX:
            problems.append(f"{name}: its smallest text is {shown:.1f} CSS px tall as displayed (at least "
                            f"{LEGIBLE_PX:g}): {text_px:.1f} image px in an image {figure['natural']} px wide shown "
                            f"at {figure['shown']:.0f}")
    return problems


JS_RAW_TABLES = r"""() => [...document.querySelectorAll('p')]
    .filter(p => /^\s*\|.*\|\s*$/m.test(p.textContent) && /\|\s*:?-{3,}/.test(p.textContent)).length"""


@pytest.mark.parametrize("page_path", PAGES or [NO_BUILD])
def test_page(page_path, site_url, browser_context):
    context = browser_context
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: m.type == "error" and problems.append(f"console error: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"uncaught exception: {e}"))
    page.on(
        "requestfailed",
        lambda r: problems.append(f"request failed: {r.url[:160]} ({r.failure})"),
    )
    page.on(
        "response",
        lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url[:160]}"),
    )
    n_blocked = len(context.blocked)
    redirect = META_REFRESH.search((SITE / page_path).read_text(encoding="utf-8", errors="replace"))
    try:
        if redirect:  # e.g. index.html -> book/intro.html: wait until the browser got there
            target = urllib.parse.urljoin(site_url + page_path, redirect.group(1))
            page.goto(site_url + page_path, wait_until="commit")  # "load" may be cut short
            page.wait_for_url(target, wait_until="load")
        else:
            page.goto(site_url + page_path, wait_until="load")
        page.wait_for_load_state("networkidle")

        # images
        for src in page.evaluate(JS_WAIT_IMAGES, TIMEOUT_MS):
            problems.append(f"image not loaded: {src}")

        # tables displayed by code cells as Markdown (display(Markdown(...))) are rendered as tables
        n_raw = page.evaluate(JS_RAW_TABLES)
        if n_raw:
            problems.append(f"{n_raw} Markdown tables shown as paragraphs of '|' text, not as tables")

        # figures legible at the column's width, tables no wider than it
        problems.extend(figure_problems(page.evaluate(JS_FIGURES), site_url))
        for table in page.evaluate(JS_WIDE_TABLES):
            problems.append(f"a table of {table['columns']} columns is {max(table['table'], table['scrolled'])} px "
                            f"wide in a column of {table['width']} px (starting {table['head']!r})")

        # math (vendored MathJax)
        n_math = page.locator(".math").count()
        n_rendered = page.evaluate(JS_MATHJAX_DONE)
        if n_math and not n_rendered:
            problems.append(f"{n_math} math elements but MathJax rendered none")

        # saved ipywidgets state (vendored require.js + html-manager)
        n_views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count()
        if n_views:
            try:
                page.wait_for_function(
                    "n => document.querySelectorAll('.jupyter-widgets.widget-container, "
                    ".jupyter-widgets .widget-inline-hbox, .jupyter-widgets .lm-Widget').length > 0",
                    arg=n_views,
                )
            except Exception:  # noqa: BLE001 - report as a problem of the page
                problems.append(f"{n_views} saved widget views but none rendered")

        # static sliders: matplotlib to_jshtml() animations
        sliders = page.locator(".animation input[type=range]")
        for i in range(sliders.count()):
            slider = sliders.nth(i)
            frame = slider.locator("xpath=ancestor::div[contains(@class,'animation')][1]//img").first
            lo, hi = float(slider.get_attribute("min") or 0), float(slider.get_attribute("max") or 0)
            if hi <= lo:
                problems.append(f"slider {i}: a single frame (min {lo}, max {hi})")
                continue
            before_value, before_src = slider.input_value(), frame.get_attribute("src")
            slider.press("End" if float(before_value) < hi else "Home")
            after_value, after_src = slider.input_value(), frame.get_attribute("src")
            if after_value == before_value:
                problems.append(f"slider {i}: did not move (value {before_value})")
            elif after_src == before_src:
                problems.append(f"slider {i}: moved {before_value} -> {after_value}, frame unchanged")

        # internal links
        for url in sorted(set(page.evaluate(JS_INTERNAL_LINKS))):
            if not url.startswith(site_url):
                problems.append(f"internal link leaves the site: {url}")
            elif (status := _http_status(url)) != 200:
                problems.append(f"internal link {url[len(site_url):]} -> HTTP {status}")

        # screenshot of the first screen
        shot = SCREENSHOTS / (page_path[: -len(".html")] + ".png")
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot))
        found = list(problems)  # not what closing the page cancels
    finally:
        page.close()

    found += [f"blocked request to the internet: {u}" for u in context.blocked[n_blocked:]]
    assert not found, f"{page_path}:\n  " + "\n  ".join(found)


def test_site_has_pages():
    """Guard against an empty or half-built site passing vacuously."""
    if not PAGES:
        _skip(f"no built book at {SITE} (run book/build.sh first)")
    assert "index.html" in PAGES
    assert any(p.startswith("book/") for p in PAGES), PAGES


def test_fig2_tiles_are_legible_in_the_built_page(site_url, browser_context):
    """Fig. 2 of chapter 02 (the tallest figure there) shows each tile at least 48 CSS px wide."""
    import inspect

    from zfcore.plots import top9_figure
    from zfcore.plots.style import DPI

    page_path = "notebooks/02_deconvnet.html"
    if page_path not in PAGES:
        _skip(f"no built {page_path}")
    parameters = inspect.signature(top9_figure).parameters
    tile = parameters["tile"].default * DPI / parameters["dpi"].default  # px of one tile in the PNG (drawn at DPI)
    page = browser_context.new_page()
    try:
        page.goto(site_url + page_path, wait_until="load")
        natural, shown = page.evaluate(
            """() => { const imgs = [...document.querySelectorAll('.cell_output img')];
                       const fig = imgs.reduce((a, b) => (b.naturalHeight > a.naturalHeight ? b : a));
                       return [fig.naturalWidth, fig.getBoundingClientRect().width]; }""")
    finally:
        page.close()
    width = shown * tile / natural
    print(f"Fig. 2: PNG {natural} px wide shown at {shown:.0f} px: a tile is {width:.1f} CSS px wide")
    assert width >= 48, f"Fig. 2 tiles are {width:.1f} px wide in the page (PNG {natural} px shown at {shown:.0f} px)"
