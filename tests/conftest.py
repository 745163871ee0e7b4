"""Test-wide settings: hypothesis explores new examples locally, replays fixed ones in CI."""

from __future__ import annotations

import os

from hypothesis import settings

# CI (CI=true) must be reproducible: the same examples every run, so a red build is a real,
# repeatable failure. Locally, each run explores new random examples.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
