"""cert_loader: load one district's validated, anonymized data into the CERT stores, all-or-nothing."""

import os

# Before anything imports pyarrow, whose C++ side picks its allocator once, at its first allocation: jemalloc for
# every process that loads districts (cert_loader/process.py says why); an operator's own choice is kept.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "jemalloc")

__version__ = "0.1.0"
