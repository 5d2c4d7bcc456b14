# lit configuration for autotpc: one-behaviour .test files, RUN lines at the
# top, JSON inputs inline via split-file.
import os
import shutil
import subprocess
import sys

import lit.formats

config.name = "autotpc"
config.test_format = lit.formats.ShTest(execute_external=False)
config.suffixes = [".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.autotpc_obj_root, "test")
config.excludes = ["Inputs", "unit", "fuzz", "bench", "CMakeLists.txt", "lit.cfg.py"]

config.environment["FILECHECK_OPTS"] = "-enable-var-scope --allow-unused-prefixes=false"
config.environment["LC_ALL"] = "C"

for tool in ["FileCheck", "not", "split-file", "count"]:
    config.substitutions.append((r"\b%s\b" % tool if tool != "not" else r"(?<![\w-])not\b",
                                 os.path.join(config.llvm_tools_dir, tool)))
# Before %autotpc, which is its prefix.
config.substitutions.append(("%autotpc-tokenize", os.path.join(config.autotpc_tools_dir, "autotpc-tokenize")))
config.substitutions.append(("%autotpc", os.path.join(config.autotpc_tools_dir, "autotpc")))
config.substitutions.append(("%specs", os.path.join(config.autotpc_src_root, "specs")))
config.substitutions.append(("%srcroot", config.autotpc_src_root))
# test/Tools/: the generated shard/consolidate mains on a tiny spec's plan, the checkpoint maker, and
# python3 for the scripts that break checkpoints (Inputs/st_edit.py).
config.substitutions.append(("%tiny-gen-tool", os.path.join(config.autotpc_tools_dir, "tiny-gen-tool")))
config.substitutions.append(("%make-tiny-checkpoint", os.path.join(config.autotpc_tools_dir, "make-tiny-checkpoint")))
config.substitutions.append(("%python", sys.executable))
# test/Tools/train-*.test: the `train` of the generated goldens that specs/train/ compiles to (built with this tree), and
# mpirun as CI runs it (root, more ranks than cores; OpenMPI's own allocations are not ours to leak-check).
config.substitutions.append(("%tiny-llama-train", os.path.join(config.autotpc_obj_root, "generated", "tiny-llama-train", "train")))
config.substitutions.append(("%tiny-qwen2-train", os.path.join(config.autotpc_obj_root, "generated", "tiny-qwen2-train", "train")))
config.substitutions.append(("%mpirun", "env ASAN_OPTIONS=detect_leaks=0 mpirun --allow-run-as-root --oversubscribe"))
# ... and a torchrun-style launch without MPI (tools/launch-local: RANK, WORLD_SIZE, MASTER_ADDR/PORT; TCP host comms).
config.substitutions.append(("%launch-local", "env ASAN_OPTIONS=detect_leaks=0 %s %s" % (
    sys.executable, os.path.join(config.autotpc_src_root, "tools", "launch-local"))))
if os.path.exists(os.path.join(config.autotpc_obj_root, "generated", "tiny-llama-train", "train")):
    config.available_features.add("cpu-train")
# A visible NVIDIA GPU (the CI and dev machines have none: train --device cuda must say so there).
if shutil.which("nvidia-smi") and subprocess.call(["nvidia-smi", "-L"], stdout=subprocess.DEVNULL,
                                                  stderr=subprocess.DEVNULL) == 0:
    config.available_features.add("gpu")
# Debian's fortunes-min (tools/install-deps.sh): real text for the tokenizer's round trip.
if os.path.exists("/usr/share/games/fortunes/fortunes"):
    config.available_features.add("fortunes")
