#!/usr/bin/env python3
"""A DeepSpeed config, rewritten for a benchmark or check that compiles it at another TP size.

    python3 tools/lib/ds-config.py TP OUT CONFIG MODEL

Reads CONFIG, sets tensor_parallel.autotp_size to TP and "model" to MODEL's absolute path (so that OUT may
live in any folder), drops train_batch_size and gradient_accumulation_steps (DeepSpeed's batch rule,
batch = micro x GAS x dp, would tie the config to the example's world size), and writes OUT. Used by
tools/bench-shard.sh and tools/multigpu-check.sh; runs on the GPU machine too (python3, no packages).
"""
import json
import os
import sys


def main(argv):
    if len(argv) != 5:
        sys.exit(f"usage: {argv[0]} TP OUT CONFIG MODEL")
    tp, out, config, model = argv[1:]
    try:
        tp = int(tp)
    except ValueError:
        sys.exit(f"ds-config: TP '{tp}' is not an integer")
    with open(config) as f:
        cfg = json.load(f)
    if not isinstance(cfg.get("tensor_parallel"), dict):
        sys.exit(f"ds-config: {config} has no 'tensor_parallel' object to set autotp_size in")
    cfg["tensor_parallel"]["autotp_size"] = tp
    cfg["model"] = os.path.abspath(model)
    for key in ("train_batch_size", "gradient_accumulation_steps"):
        cfg.pop(key, None)
    with open(out, "w") as f:
        json.dump(cfg, f, indent=2)


if __name__ == "__main__":
    main(sys.argv)
