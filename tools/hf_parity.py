#!/usr/bin/env python3
"""HF transformers' side of the parity check of `train --loss-and-grads` (runs where torch + transformers are).

For each family (llama, qwen2, phi3, mistral) it builds a random-init *ForCausalLM in float32 from the tiny
config in specs/tiny/<family>.json, saves it with save_pretrained (model.safetensors + config.json), writes
R rows of S+1 uint32 tokens (raw little-endian, the oracle's input) into the same folder, and transformers'
mean cross-entropy of predicting tokens 1..S from tokens 0..S-1 and its gradients as
OUT_DIR/<family>.reference.safetensors (`loss`, `grad.<name>`), outside the model folder; the same in bfloat16
as OUT_DIR/<family>.transformers-bf16.safetensors (the yardstick for our bf16 gradients).
tools/hf-parity.sh then runs our oracle on the same folder and compares.

usage: hf_parity.py OUT_DIR [--rows R] [--seq S]

With --exports, OUT_DIR instead holds our HF exports (tools/hf-export-parity.sh prepare): each
OUT_DIR/<name>/ with model.safetensors, config.json and rows.bin is loaded with from_pretrained (float32),
and its logits, loss and gradients on rows.bin go to OUT_DIR/<name>.reference.safetensors.
"""
import argparse
import json
import os
import random
import struct

import torch
import transformers
from safetensors.torch import save_file

FAMILIES = {
    "llama": "LlamaForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
    "phi3": "Phi3ForCausalLM",
    "mistral": "MistralForCausalLM",
}


def reference(model, rows, vocab, with_logits):
    """transformers' mean cross-entropy of tokens 1..S from 0..S-1, its gradients, and (optionally) logits."""
    ids = torch.tensor(rows, dtype=torch.long)
    model.train(False)  # no dropout; attention dropout is 0 in these configs anyway
    model.zero_grad()
    logits = model(input_ids=ids[:, :-1]).logits
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab).float(), ids[:, 1:].reshape(-1))
    loss.backward()
    ref = {"loss": loss.detach().reshape(1).float().contiguous()}
    if with_logits:
        ref["logits"] = logits.detach().float().contiguous()
    for name, p in model.named_parameters():
        ref["grad." + name] = p.grad.detach().float().contiguous()
    return loss, ref


def check_exports(out):
    for name in sorted(os.listdir(out)):
        folder = os.path.join(out, name)
        if not os.path.exists(os.path.join(folder, "rows.bin")):
            continue
        raw = open(os.path.join(folder, "rows.bin"), "rb").read()
        tokens = list(struct.unpack("<%dI" % (len(raw) // 4), raw))
        rows = [tokens[i:i + 33] for i in range(0, len(tokens), 33)]
        # float32 (the reference), and float64 (stored as F32) to tell float32 rounding from a difference
        for dtype, suffix in ((torch.float32, ""), (torch.float64, "64")):
            model = transformers.AutoModelForCausalLM.from_pretrained(folder, dtype=dtype)
            loss, ref = reference(model, rows, model.config.vocab_size, True)
            save_file(ref, os.path.join(out, name + ".reference" + suffix + ".safetensors"))
        print("%s: %s loaded by transformers %s, loss %.9g" % (name, type(model).__name__, transformers.__version__,
                                                                loss.item()))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--seq", type=int, default=32)
    ap.add_argument("--exports", action="store_true")
    args = ap.parse_args()
    if args.exports:
        check_exports(args.out)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    specs = os.path.join(here, "..", "specs", "tiny")
    for family, cls_name in FAMILIES.items():
        cfg_dict = json.load(open(os.path.join(specs, family + ".json")))
        cfg_dict.pop("torch_dtype", None)
        if family == "mistral":
            cfg_dict["sliding_window"] = 8  # shorter than the rows, so HF's window rule is compared too
        cfg = transformers.AutoConfig.for_model(**cfg_dict)
        torch.manual_seed(1234)
        model = getattr(transformers, cls_name)(cfg).float()
        # Norm weights random too, so that their gradients are checked against non-trivial values.
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("norm.weight"):
                    p.uniform_(0.8, 1.2)
                elif name.endswith(".bias"):
                    p.uniform_(-0.1, 0.1)
        folder = os.path.join(args.out, family)
        model.save_pretrained(folder, safe_serialization=True)
        rng = random.Random(7)
        vocab = cfg.vocab_size
        rows = [[rng.randrange(vocab) for _ in range(args.seq + 1)] for _ in range(args.rows)]
        with open(os.path.join(folder, "rows.bin"), "wb") as f:
            for r in rows:
                f.write(struct.pack("<%dI" % len(r), *r))
        loss, ref = reference(model, rows, vocab, False)
        save_file(ref, os.path.join(args.out, family + ".reference.safetensors"))
        # The same model in bfloat16 (weights, activations and gradients, as DeepSpeed's bf16 mode and our
        # trainer run it): how far transformers' own bf16 gradients are from its fp32 ones, the yardstick
        # for ours (tools/gpu-train.sh check).
        _, ref16 = reference(model.to(torch.bfloat16), rows, vocab, False)
        save_file(ref16, os.path.join(args.out, family + ".transformers-bf16.safetensors"))
        print("%s: transformers %s, loss %.9g, %d gradients" % (family, transformers.__version__, loss.item(), len(ref) - 1))


if __name__ == "__main__":
    main()
