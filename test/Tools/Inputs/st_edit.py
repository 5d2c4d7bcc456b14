#!/usr/bin/env python3
"""Breaks a .safetensors file in one named way, in place, for the lit tests of test/Tools/.

  st_edit.py truncate FILE N            cut the last N bytes off the file
  st_edit.py header-length FILE N       make the 8-byte header length N bytes longer than the file allows
  st_edit.py overlap FILE               move the second tensor (by offset) 2 bytes back, into the first
  st_edit.py dtype FILE TENSOR DTYPE    rename TENSOR's dtype
  st_edit.py drop FILE TENSOR           remove TENSOR from the header (its bytes stay, as a gap)
  st_edit.py transpose FILE TENSOR      swap TENSOR's two dimensions (same byte size, another shape)
  st_edit.py metadata FILE KEY VALUE    set a __metadata__ entry

Prints what it did, naming the tensor it touched."""
import json
import struct
import sys


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def write(path, header, data):
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def tensors_by_offset(header):
    names = [k for k in header if k != "__metadata__"]
    return sorted(names, key=lambda k: header[k]["data_offsets"][0])


def main(op, path, *args):
    if op == "truncate":
        with open(path, "r+b") as f:
            f.seek(0, 2)
            f.truncate(f.tell() - int(args[0]))
        print(f"truncated by {args[0]} bytes")
        return
    if op == "header-length":
        with open(path, "r+b") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(0)
            f.write(struct.pack("<Q", size - 8 + int(args[0])))
        print(f"header length set to {size - 8 + int(args[0])}")
        return
    header, data = read(path)
    if op == "overlap":
        first, second = tensors_by_offset(header)[:2]
        begin, end = header[second]["data_offsets"]
        header[second]["data_offsets"] = [begin - 2, end - 2]
        print(f"moved {second} into {first}")
    elif op == "dtype":
        header[args[0]]["dtype"] = args[1]
        print(f"{args[0]} is now {args[1]}")
    elif op == "drop":
        del header[args[0]]
        print(f"dropped {args[0]}")
    elif op == "transpose":
        header[args[0]]["shape"] = header[args[0]]["shape"][::-1]
        print(f"{args[0]} is now {header[args[0]]['shape']}")
    elif op == "metadata":
        header.setdefault("__metadata__", {})[args[0]] = args[1]
        print(f"metadata {args[0]} = {args[1]}")
    else:
        sys.exit(f"st_edit.py: unknown operation {op}")
    write(path, header, data)


if __name__ == "__main__":
    main(*sys.argv[1:])
