"""Read a downloaded CSV (gzip-compressed or not) into HDF5 on disk, then hand it out in chunks.

Parsing uses Arrow's streaming CSV reader rather than pandas (vaex's `from_csv` default):
pandas' C parser silently truncates rows with too many fields and pads rows with too few,
while Arrow reports each one with its row number, which the contract needs (LineMap turns
row numbers into the line numbers an editor shows, when the two differ). Every
EXPORT_BYTES of parsed rows are written to an HDF5 file in vaex's layout, by vaex's own column
writers fed straight from the Arrow buffers (vaex's `export_hdf5` spends ~6x longer evaluating
its DataFrame machinery around the same copy). The files are then read back with vaex, one
memory-mapped file at a time, so memory stays flat whatever the file size, and the row count is
known before the first row is published. Structural problems (no header, an unterminated quote,
a row bigger than MAX_ROW_BYTES) fail the whole file here, before anything reaches Kafka.

A gzip file is inflated on the fly as Arrow reads it (in Arrow's read-ahead thread, beside the
parser), never written out whole, and refused once it inflates past a cap. Arrow parses
BLOCK_BYTES at a time and reads several blocks ahead, so the block size sets most of the
fetcher's memory; a row that does not fit in a block makes the reader start over with larger
blocks, up to MAX_ROW_BYTES.

One module per concern:

- `source`: opening the file, plain or gzip, with the inflation cap (`_Source`), and its header
  (`read_header`); `ReadError`, MAX_ROW_BYTES.
- `lines`: line numbering (`_LineBreaks`, `LineMap`).
- `parse`: Arrow's streaming parse (`_parse`) and the UTF-8 decoding of its rows
  (`_to_strings`); READ_AHEAD_BLOCKS.
- `scanning`: pass 1 (`scan`, giving a `Scan`); BLOCK_BYTES.
- `hdf5`: pass 2, the conversion to HDF5 (`Converter`, `convert`, `export_hdf5`); EXPORT_BYTES.
- `readback`: the HDF5 files read back in chunks.

The constants are not re-exported here: each is read, and must be patched, in its own module.
"""

from __future__ import annotations

from .hdf5 import Converted, Converter, convert, export_hdf5, remove
from .lines import LineMap
from .scanning import Scan, scan
from .source import ReadError, read_header

__all__ = [
    "Converted",
    "Converter",
    "LineMap",
    "ReadError",
    "Scan",
    "convert",
    "export_hdf5",
    "read_header",
    "remove",
    "scan",
]
