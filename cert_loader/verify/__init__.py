"""Verification inside the open transactions (DESIGN.md section 7): prove what landed equals what was given.

``tables`` checks one relational table (count, FK integrity); ``graph`` checks the district's
subgraph (nodes per label, relationships per type, nothing dangling) and, with ``verify="content"``,
``graph_content`` compares their properties with the source's.
"""

from cert_loader.verify.examples import EXAMPLES
from cert_loader.verify.graph import verify_graph
from cert_loader.verify.tables import verify_table

__all__ = ["EXAMPLES", "verify_graph", "verify_table"]
