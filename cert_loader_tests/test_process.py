"""The process set-up of the CLI and the code location: Arrow's allocator (jemalloc), an operator's choice kept."""

from __future__ import annotations

import os
import subprocess
import sys

# What the CLI does: cert_loader imported first, then pyarrow; the pool the C++ readers allocate from.
PROBE = "import cert_loader.cli, pyarrow as pa; print(pa.default_memory_pool().backend_name)"


def pool_of_a_process(**env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_a_loading_process_allocates_with_jemalloc() -> None:
    assert pool_of_a_process() == "jemalloc"


def test_the_operators_pool_is_kept() -> None:
    assert pool_of_a_process(ARROW_DEFAULT_MEMORY_POOL="system") == "system"
