# The status page's browser test (tests/scenario/ui.sh) loads it in
# Debian's Chromium, headless.
TEST_DEB_PKGS += chromium
