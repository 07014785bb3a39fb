#!/usr/bin/env bash
# Re-create book/vendor/: the JavaScript the built book needs, served from the site itself so that
# pages work without internet (no CDN). Run from anywhere; needs `npm` (only `npm pack`, which
# downloads a package's tarball from the npm registry) and `sha256sum`. The result is committed.
#
#   mathjax@3                       es5/tex-chtml.js, the TeX extensions it autoloads (not the
#                                   212 kB all-packages bundle) and the CHTML woff-v2 fonts.
#                                   Left out: a11y/explorer + sre (speech, 4 MB), ui/lazy, svg output.
#   requirejs                       require.js (loads the widget manager as an AMD module)
#   @jupyter-widgets/html-manager@1.0.6
#                                   dist/embed-amd.js (renders saved ipywidgets state) and the
#                                   Font Awesome 5 woff2 fonts it references; webpack resolves them
#                                   next to embed-amd.js, so they live in the same folder. Browsers
#                                   pick the woff2 source first, so eot/ttf/svg/woff are left out.
#
# Sphinx serves book/vendor/ through html_static_path (see _config.yml), i.e. at _static/<name>/.
set -euo pipefail

MATHJAX=mathjax@3.2.2
REQUIREJS=requirejs@2.3.8
HTMLMANAGER=@jupyter-widgets/html-manager@1.0.6

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="$here/vendor"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$tmp"
for pkg in "$MATHJAX" "$REQUIREJS" "$HTMLMANAGER"; do
    mkdir -p "unpacked/$pkg"
    tgz="$(npm pack --silent "$pkg")"
    tar xzf "$tgz" -C "unpacked/$pkg"
done

rm -rf "$dest"
mkdir -p "$dest"

# MathJax
mj="unpacked/$MATHJAX/package"
out="$dest/mathjax"
mkdir -p "$out/input/tex/extensions" "$out/output/chtml/fonts"
cp "$mj/LICENSE" "$out/LICENSE"
cp "$mj/es5/tex-chtml.js" "$out/"
find "$mj/es5/input/tex/extensions" -maxdepth 1 -name '*.js' ! -name all-packages.js \
    -exec cp {} "$out/input/tex/extensions/" \;
cp -r "$mj/es5/output/chtml/fonts/woff-v2" "$out/output/chtml/fonts/"

# require.js (its licence header is in the file: MIT)
mkdir -p "$dest/requirejs"
cp "unpacked/$REQUIREJS/package/require.js" "$dest/requirejs/"

# @jupyter-widgets/html-manager
hm="unpacked/$HTMLMANAGER/package"
out="$dest/html-manager"
mkdir -p "$out"
cp "$hm/LICENSE" "$out/LICENSE"
cp "$hm/dist/embed-amd.js" "$hm/dist/embed.js.LICENSE.txt" "$out/"
# the fonts embed-amd.js references, woff2 only
for f in $(grep -o '[0-9a-f]\{20\}\.woff2' "$hm/dist/embed-amd.js" | sort -u); do
    cp "$hm/dist/$f" "$out/"
done

{
    echo "# Vendored by book/vendor.sh from the npm registry: $MATHJAX $REQUIREJS $HTMLMANAGER"
    (cd "$dest" && find . -type f ! -name SHA256SUMS | LC_ALL=C sort | xargs sha256sum)
} > "$dest/SHA256SUMS"

du -sh "$dest"
