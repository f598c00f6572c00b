"""Read a downloaded CSV (compressed or not, in any of the dialects `Format` describes) into HDF5
on disk, then hand it out in chunks.

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

A compressed file (gzip, bzip2, xz, zstd, a zip member: told by its first bytes) is inflated on
the fly as Arrow reads it (in Arrow's read-ahead thread, beside the parser), never written out
whole, and refused once it inflates past a cap. Arrow parses
BLOCK_BYTES at a time and reads several blocks ahead, so the block size sets most of the
fetcher's memory; a row that does not fit in a block makes the reader start over with larger
blocks, up to MAX_ROW_BYTES.

One module per concern:

- `errors`: `ReadError`.
- `compression`: a file's compression by its magic bytes, and its inflating streams.
- `source`: opening the file, plain or compressed, with the inflation cap (`_Source`);
  MAX_ROW_BYTES.
- `dialect`: `Format` (delimiter, null tokens, zip member, column map) and delimiter detection.
- `columns`: header names matched to the contract (any case, a map, ChEMBL's own names).
- `header`: the header row read, its delimiter found, its names mapped and checked
  (`read_header`).
- `lines`: line numbering (`_LineBreaks`, `LineMap`).
- `parse`: Arrow's streaming parse (`_parse`) and the UTF-8 decoding of its rows
  (`_to_strings`); READ_AHEAD_BLOCKS.
- `scanning`: pass 1 (`scan`, giving a `Scan`); BLOCK_BYTES.
- `hdf5`: pass 2, the conversion to HDF5 (`Converter`, `convert`, `export_hdf5`); EXPORT_BYTES.
- `readback`: the HDF5 files read back in chunks.

The constants are not re-exported here: each is read, and must be patched, in its own module.
"""

from __future__ import annotations

from .dialect import Format
from .errors import ReadError
from .hdf5 import Converted, Converter, convert, export_hdf5, remove
from .header import read_header
from .lines import LineMap
from .scanning import Scan, scan

__all__ = [
    "Converted",
    "Converter",
    "Format",
    "LineMap",
    "ReadError",
    "Scan",
    "convert",
    "export_hdf5",
    "read_header",
    "remove",
    "scan",
]
