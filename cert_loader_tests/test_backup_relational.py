"""The capture's COPY stream cut into whole CSV records, and a refused value that ends a capture, then the process."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pytest

from cert_loader.backup.relational import record_blocks, record_end

REPO = Path(__file__).resolve().parents[1]

RECORDS = [b'1,plain\n', b'2,"with ""quotes"""\n', b'3,"two\nlines"\n', b'4,\n', b'5,"\n"\n', b'6,"""\n"""\n']


@pytest.mark.parametrize(("block", "whole"), [
    (b"", 0),
    (b'1,a\n2,b', 4),
    (b'1,"a\nb', 0),              # the newline is inside a quoted value
    (b'1,"a\nb"\n2,"c\n', 8),     # the second record's value is still open
    (b'1,"say ""hi"""\n2', 15),    # doubled quotes inside a value
])
def test_record_end_is_the_last_newline_outside_quotes(block, whole):
    assert record_end(block) == whole


def test_blocks_are_whole_records_whatever_the_drivers_chunks(monkeypatch):
    """Any split of the stream into chunks gives blocks that join back to it, each of whole records."""
    monkeypatch.setattr("cert_loader.backup.relational.CHUNK_BYTES", 64)
    rng = random.Random(13)
    stream = b"".join(rng.choice(RECORDS) for _ in range(2000)) + b'7,"' + b"x\n" * 500 + b'"\n'  # one value > 64 bytes
    cuts = sorted(rng.sample(range(1, len(stream)), 300))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    blocks = list(record_blocks(iter(chunks)))
    assert b"".join(blocks) == stream
    options = pcsv.ParseOptions(newlines_in_values=True)
    for block in blocks:
        assert record_end(block) == len(block)
        pcsv.read_csv(pa.py_buffer(block), read_options=pcsv.ReadOptions(column_names=["a", "b"]),
                      parse_options=options)


def test_a_process_whose_capture_was_refused_mid_stream_exits():
    """A refused value in the first block while the COPY still streams: the process still exits.

    pyarrow's streaming reader, given up on while its read-ahead thread still read the prefetch, hung the
    exit of the pytest process that ran this test (CI timed out after its last test passed): run it alone
    in a fresh process, which must end.
    """
    test = "cert_loader_tests/test_backup.py::test_a_refused_value_early_in_a_large_table_stops_the_capture_cleanly"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", test], cwd=REPO,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:]
    assert "1 passed" in done.stdout
