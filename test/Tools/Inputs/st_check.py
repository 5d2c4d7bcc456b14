#!/usr/bin/env python3
"""Checks .safetensors files against each other, for the lit tests of test/Tools/; exits 1 on a difference.

  st_check.py same A B                            every tensor of A is in B, same dtype, shape and bytes,
                                                  and B has no other
  st_check.py bands FULL SHARD TENSOR C0:C1 ...   TENSOR (2-D) in SHARD is the column bands [C0, C1) ... of
                                                  TENSOR in FULL, side by side in each row

Prints one line saying what matched."""
import json
import struct
import sys

SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
         "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def tensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    header.pop("__metadata__", None)
    data = blob[8 + n:]
    return {k: (v["dtype"], v["shape"], data[v["data_offsets"][0]:v["data_offsets"][1]]) for k, v in header.items()}


def fail(msg):
    print(f"st_check.py: {msg}")
    sys.exit(1)


def main(op, *args):
    if op == "same":
        a, b = tensors(args[0]), tensors(args[1])
        if sorted(a) != sorted(b):
            fail(f"tensor names differ: {sorted(set(a) ^ set(b))}")
        for name in a:
            if a[name] != b[name]:
                fail(f"tensor '{name}' differs")
        print(f"same: {len(a)} tensors")
    elif op == "bands":
        full_dtype, (rows, cols), full = tensors(args[0])[args[2]]
        dtype, shape, local = tensors(args[1])[args[2]]
        size = SIZES[full_dtype]
        bands = [tuple(int(x) for x in band.split(":")) for band in args[3:]]
        expected = b"".join(full[(r * cols + c0) * size:(r * cols + c1) * size] for r in range(rows) for c0, c1 in bands)
        if dtype != full_dtype or shape != [rows, sum(c1 - c0 for c0, c1 in bands)]:
            fail(f"tensor '{args[2]}' is {dtype}{shape}")
        if local != expected:
            fail(f"tensor '{args[2]}' is not the column bands {args[3:]}")
        print(f"bands: '{args[2]}' {shape} is columns {' '.join(args[3:])}")
    else:
        fail(f"unknown operation {op}")


if __name__ == "__main__":
    main(*sys.argv[1:])
