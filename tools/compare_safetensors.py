#!/usr/bin/env python3
"""Compares two safetensors files of F32 tensors with the same names: for each tensor the largest absolute
difference relative to the largest absolute element of the reference. Prints the worst tensor; exit 1 if any
tensor exceeds --tol or the names differ. Plain Python (no numpy), for small files.

--only PREFIX compares only the tensors whose names start with PREFIX (repeatable); --print-worst prints the
largest relative error alone (for scripts).

usage: compare_safetensors.py REFERENCE OURS [--tol T] [--label TEXT] [--only PREFIX]... [--print-worst]"""
import argparse
import json
import struct
import sys


def load(path):
    data = open(path, "rb").read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        if t["dtype"] != "F32":
            sys.exit("%s: %s is %s, not F32" % (path, name, t["dtype"]))
        b, e = t["data_offsets"]
        out[name] = struct.unpack("<%df" % ((e - b) // 4), body[b:e])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("ours")
    ap.add_argument("--tol", type=float, default=1e-5)
    ap.add_argument("--label", default="")
    ap.add_argument("--only", action="append", default=[])
    ap.add_argument("--print-worst", action="store_true")
    a = ap.parse_args()
    ref, ours = load(a.reference), load(a.ours)
    losses = "loss %.9g vs %.9g; " % (ref["loss"][0], ours["loss"][0]) if "loss" in ref and "loss" in ours else ""
    if a.only:
        keep = lambda d: {k: v for k, v in d.items() if any(k.startswith(p) for p in a.only)}
        ref, ours = keep(ref), keep(ours)
    if set(ref) != set(ours):
        print("%s: tensor names differ: only in reference %s, only in ours %s"
              % (a.label, sorted(set(ref) - set(ours))[:5], sorted(set(ours) - set(ref))[:5]))
        return 1
    worst, worst_name = 0.0, ""
    for name, r in ref.items():
        o = ours[name]
        scale = max(abs(x) for x in r) or 1.0
        err = max(abs(x - y) for x, y in zip(r, o)) / scale
        if err > worst:
            worst, worst_name = err, name
    ok = worst <= a.tol
    if a.print_worst:
        print("%.3g" % worst)
        return 0 if ok else 1
    print("%s: %slargest relative error %.3g (%s) %s" % (a.label, losses, worst, worst_name, "ok" if ok else "FAILED"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
