#!/usr/bin/env python3
"""The DeepSpeed config of an HF parity check: the model folder at TP size `tp` with its family's preset.

phi3: DeepSpeed's preset splits qkv_proj in equal thirds, wrong for GQA; the config states the [q, kv, kv]
split (and gate_up's halves) in layer_specs instead. Used by tools/hf-parity.sh and tools/gpu-train.sh.

usage: parity_config.py MODEL_DIR TP FAMILY OUT.json
"""
import json
import sys


def main():
    src, tp, family, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    tpc = {"autotp_size": tp, "preset_model": family}
    if family == "phi3":
        c = json.load(open(src + "/config.json"))
        d = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
        q, kv = c["num_attention_heads"] * d, c["num_key_value_heads"] * d
        tpc = {"autotp_size": tp, "partition_config": {"use_default_specs": False, "layer_specs": [
            {"patterns": [r".*\.self_attn\.o_proj\.weight$", r".*\.mlp\.down_proj\.weight$"], "partition_type": "row"},
            {"patterns": [r".*\.self_attn\.qkv_proj\.weight$"], "partition_type": "column",
             "shape": [[q, kv, kv], -1], "partition_dim": 0},
            {"patterns": [r".*\.mlp\.gate_up_proj\.weight$"], "partition_type": "column", "shape": [2, -1],
             "partition_dim": 0}]}}
    json.dump({"model": src, "train_micro_batch_size_per_gpu": 1, "tensor_parallel": tpc}, open(out, "w"), indent=1)


if __name__ == "__main__":
    main()
