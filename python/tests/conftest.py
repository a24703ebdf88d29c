"""Shared fixtures. The package is tested as found on sys.path (the source tree
under ctest, or an installed copy); EXPERTCAST_LIBRARY may name the library."""

import importlib
import os
import shutil

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SAMPLE = os.path.join(REPO, "data", "sample_trace.jsonl")
TINY = os.path.join(REPO, "data", "tiny-mixtral")
SHARED = os.path.join(REPO, "..", "shared", "data")


def need(module):
    """Imports an optional dependency, or skips the test, saying why. Under CI
    (CI set in the environment) a missing dependency fails instead: there the
    set-up installs it, so its absence is a broken set-up, not a reason to skip."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        msg = f"{module} is not installed ({e}); `bash .ci/deps.sh` installs it into .venv"
        if os.environ.get("CI"):
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg, allow_module_level=True)


@pytest.fixture(scope="session")
def cli():
    """The expertcast command: $EXPERTCAST_CLI, else build/expertcast, else PATH."""
    for p in (os.environ.get("EXPERTCAST_CLI"), os.path.join(REPO, "build", "expertcast"),
              shutil.which("expertcast")):
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    msg = "the expertcast CLI is not built (set EXPERTCAST_CLI or build into build/)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)
