import os

import pytest
import torch

if not torch.cuda.is_available():
    # Triton kernels (rtu_core.engines.kernels) run in Triton's interpreter on a CPU; the variable is read when a
    # kernel is defined, so it is set before any test module imports rtu_core
    os.environ.setdefault("TRITON_INTERPRET", "1")

# The full tier (make test, CI) runs everything; the quick tier (make check) leaves these modules out: they serve
# the app in a browser, execute notebooks, train to a bar, or run training subprocesses.
SLOW_MODULES = {
    "test_lab_browser",
    "test_lab_session",
    "test_learning",
    "test_ppo",
    "test_sweep",
    "test_cli",
    "test_stops",
    "test_mujoco",
    "test_popgym",
    "test_determinism",
    "test_notebooks_jupyterlab",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1] if getattr(item, "module", None) else ""
        if module in SLOW_MODULES or item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


# The browser tests' server (one per test module) and a fresh page on it for each test (tests/browser.py).
@pytest.fixture(scope="module")
def server():
    from tests.browser import served_app

    with served_app() as url:
        yield url


@pytest.fixture
def page(server):
    from tests.browser import chromium_page

    with chromium_page(server) as page:
        yield page
