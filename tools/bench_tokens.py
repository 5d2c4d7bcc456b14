#!/usr/bin/env python3
"""bench_tokens.py OUT - the speed benchmarks' training data: uniform random token ids over Llama 3's vocabulary,
as tools/bench_torch.py feeds the baselines (byte-level text would give a few ids most of the rows, which only the
embedding backward would notice), seeded, 64 steps of 4 rows of 2049 tokens. An autotpc token file
(runtime/include/atp/token_file.h): a 32-byte header, then uint32 ids."""
import random
import struct
import sys

vocab, count = 128256, 4 * 2049 * 64
random.seed(0)
ids = [random.randrange(vocab) for _ in range(count)]
with open(sys.argv[1], "wb") as f:
    f.write(b"ATPTOKEN" + struct.pack("<IIQII", 1, 4, count, max(ids) + 1, 0))
    f.write(struct.pack("<%dI" % count, *ids))
