"""Shared pytest fixtures. Real sample data lives in ../shared/data (a user's clone has none: tests skip)."""
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """Where the real sample data is: $FASTTCM_SHARED_DATA, else ../shared/data beside the repository."""
    env = os.environ.get("FASTTCM_SHARED_DATA")
    return Path(env) if env else REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of the real sample data; skips the test with the reason when it is absent."""
    root = shared_data_dir()
    if not root.is_dir():
        pytest.skip(f"real sample data not found at {root} (set FASTTCM_SHARED_DATA to its folder)")
    return root


def load_tool(name: str):
    """Import ``tools/<name>.py`` as a module (the tools are scripts, not a package) to call its ``main(argv)``."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"tool_{name}", REPO / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
