"""Read a W&B offline run file (run-*.wandb) without the network: the records `wandb sync` would upload.

The file is a LevelDB-style log (wandb's datastore): a 7-byte header, then 32 KiB blocks of
records, each with a 7-byte header (crc32, length, type FULL/FIRST/MIDDLE/LAST); a record's
payload is a protobuf ``wandb.proto.wandb_internal_pb2.Record``.
"""

from __future__ import annotations

import struct
from pathlib import Path

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path):
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", "not a W&B datastore file"
    offset, pending = HEADER, b""
    while offset + HEADER <= len(data):
        left_in_block = BLOCK - offset % BLOCK
        if left_in_block < HEADER:  # block trailer padding
            offset += left_in_block
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + HEADER])
        if offset + HEADER + length > len(data):  # the writer is still appending this record
            break
        payload = data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind == FULL:
            pending = payload
        elif kind == FIRST:
            pending = payload
            continue
        elif kind == MIDDLE:
            pending += payload
            continue
        elif kind == LAST:
            pending += payload
        else:
            break  # zero padding at the end
        record = wandb_internal_pb2.Record()
        record.ParseFromString(pending)
        yield record
