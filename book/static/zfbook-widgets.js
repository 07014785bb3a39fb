/* zfbook: glue for rendering saved ipywidgets state offline (loaded by myst-nb on pages with widget
 * state, between require.js and @jupyter-widgets/html-manager's embed-amd.js; see _config.yml).
 *
 * 1. The widget manager's webpack code resolves its font files against the URL of the AMD module
 *    (module.uri), which require.js derives from the module's name and, by default, the page's own
 *    folder (404s like notebooks/@jupyter-widgets/x.woff2). Map the module names onto the vendored
 *    folder that holds embed-amd.js and its fonts (window.__jupyter_widgets_assets_path__ is not
 *    enough: the font URLs are computed before it is read).
 * 2. @jupyter-widgets/controls typesets descriptions with the MathJax 2 API
 *    (MathJax.Hub.Queue(["Typeset", MathJax.Hub, el])); the book ships MathJax 3, where that throws
 *    "Cannot read properties of undefined (reading 'Queue')". Map it onto MathJax 3.
 */
(function () {
  "use strict";
  var here = document.currentScript && document.currentScript.src;
  if (here && window.require && window.require.config) {
    var base = new URL("html-manager", here).href; // .../_static/html-manager
    window.require.config({
      paths: {
        "@jupyter-widgets/html-manager/dist": base, // longest prefix wins in require.js
        "@jupyter-widgets": base
      }
    });
    window.__jupyter_widgets_assets_path__ = base + "/";
  }

  // Deferred scripts (MathJax) have run by DOMContentLoaded; widgets render after it.
  document.addEventListener("DOMContentLoaded", function () {
    var MJ = window.MathJax;
    if (!MJ || MJ.Hub || typeof MJ.typesetPromise !== "function") return;
    MJ.Hub = {
      Queue: function () {
        Array.prototype.forEach.call(arguments, function (job) {
          if (!Array.isArray(job) || job[0] !== "Typeset") return;
          var el = job[2];
          var ready = (MJ.startup && MJ.startup.promise) || Promise.resolve();
          ready
            .then(function () { return MJ.typesetPromise(el ? [el] : undefined); })
            .catch(function (err) { console.warn("zfbook: MathJax typeset of a widget failed", err); });
        });
      }
    };
  });
})();
