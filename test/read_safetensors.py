#!/usr/bin/env python3
"""A safetensors reader written from the format's specification with
Python's standard library only, reading a checkpoint that `nabla train
--save` wrote: any safetensors reader opens a nabla checkpoint.

The format: an 8-byte little-endian unsigned header length N; N bytes of
UTF-8 JSON, an object whose keys are tensor names (each with "dtype",
"shape" and "data_offsets" [begin, end) into the data) and optionally
"__metadata__" (string to string); then the data, little-endian.

Usage: read_safetensors.py NABLA_EXECUTABLE
"""

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import zlib

SIZES = {"F32": 4, "F64": 8}


def read(path):
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    assert 8 + n <= len(raw), "header runs past the end"
    header = json.loads(raw[8 : 8 + n].decode("utf-8"))
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    tensors = {}
    covered = []
    for name, t in header.items():
        dtype, shape, (begin, end) = t["dtype"], t["shape"], t["data_offsets"]
        count = math.prod(shape)
        assert end - begin == count * SIZES[dtype], name
        fmt = "<%d%s" % (count, "f" if dtype == "F32" else "d")
        tensors[name] = (dtype, shape, struct.unpack(fmt, data[begin:end]))
        covered.append((begin, end))
    # the regions tile the data exactly
    pos = 0
    for begin, end in sorted(covered):
        assert begin == pos, "gap or overlap at %d" % begin
        pos = end
    assert pos == len(data), "data past the last tensor"
    return raw, n, meta, tensors


def main():
    nabla = sys.argv[1]
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "model.ckpt")
        subprocess.run(
            [nabla, "train", "--layers", "16", "--epochs", "1", "--opt", "adam",
             "--seed", "7", "--save", ckpt],
            check=True, stdout=subprocess.DEVNULL)
        raw, n, meta, tensors = read(ckpt)

        # nabla's own entries, read as plain strings
        assert meta["nabla.format"] == "checkpoint", meta
        assert meta["nabla.version"] == "2", meta
        assert meta["optim.kind"] == "adam", meta
        assert int(meta["optim.step"]) > 0, meta
        assert meta["arch"] == "mlp", meta

        # the CRC-32s, as the format's comment defines them
        data_crc = zlib.crc32(raw[8 + n :])
        assert "%08x" % data_crc == meta["nabla.crc32.data"]
        digits = meta["nabla.crc32.header"]
        key = b'"nabla.crc32.header":"' + digits.encode() + b'"'
        at = raw.index(key, 8) + len(key) - 9
        blanked = raw[:at] + b"00000000" + raw[at + 8 : 8 + n]
        assert "%08x" % zlib.crc32(blanked) == digits

        # the model's tensors with Adam's two moments and update count each,
        # all finite
        params = [k for k in tensors if "/" not in k]
        assert params, tensors.keys()
        for p in params:
            dtype, shape, values = tensors[p]
            assert dtype == "F32"
            assert all(math.isfinite(v) for v in values), p
            for slot in ("m", "v"):
                assert tensors[p + "/" + slot][1] == shape, (p, slot)
            dtype, shape, count = tensors[p + "/t"]
            assert dtype == "F64" and shape == [], (p, dtype, shape)
            assert count[0] == int(meta["optim.step"]), (p, count)
        assert len(tensors) == 4 * len(params)
        print("read %d tensors (%d parameters) and %d metadata entries"
              % (len(tensors), len(params), len(meta)))


if __name__ == "__main__":
    main()
