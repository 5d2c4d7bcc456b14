#!/usr/bin/env python3
"""How far bf16 training drifts from fp32 in PyTorch, on the tiny Llama of the trainer's GPU check.

tools/gpu-train.sh compares our bf16 trajectory with our fp32 one (same init, same batches). This script
measures the same drift for transformers' LlamaForCausalLM on the same model, data and schedule, so the
gap ours shows can be judged against what a reference implementation shows. Three runs from one fp32
init on the same batches:
  fp32        fp32 weights and compute;
  bf16-master bf16 weights, activations and gradients, fp32 master weights and AdamW state (DeepSpeed's
              bf16 mode, and our trainer's);
  autocast    fp32 weights, forward/backward under torch.autocast(bfloat16) (PyTorch AMP).
Prints each bf16 run's largest per-step relative loss difference from fp32 and the difference of the mean
loss over the last 20 steps. Runs where torch + transformers + CUDA exist.

usage: bf16_drift.py --data TOKENS.bin [--config specs/train/tiny-llama.json] [--init-from HF_DIR] [--steps 200]
                     [--seq 256] [--batch 8]
--init-from starts from an HF checkpoint instead of transformers' random init (gpu-train.sh passes our
trainer's seeded init, exported with `train --steps 0 --export`, so both implementations start alike).
"""
import argparse
import json
import math
import os
import struct

import torch
import transformers


def read_tokens(path):
    data = open(path, "rb").read()
    magic, version, width, count = struct.unpack("<8sIIQ", data[:24])
    assert magic == b"ATPTOKEN" and version == 1, "not an autotpc token file"
    dtype = {2: torch.int16, 4: torch.int32}[width]
    t = torch.frombuffer(bytearray(data[32:32 + count * width]), dtype=dtype).to(torch.int64)
    return t & 0xFFFF if width == 2 else t


def lr_at(step, base, warmup, total):
    """DeepSpeed's WarmupCosineLR shape (linear warmup from 0, cosine to ~0): the same for every run."""
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.0001 + (1 - 0.0001) * 0.5 * (1 + math.cos(math.pi * p)))


def run(mode, cfg, init, batches, args):
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).cuda()
    model.load_state_dict(init)
    params = [p for p in model.parameters()]
    if mode == "bf16-master":
        master = [p.detach().clone().float() for p in params]
        model.to(torch.bfloat16)
        params = [p for p in model.parameters()]
        for m in master:
            m.requires_grad_(True)
        opt_params = master
    else:
        opt_params = params
    opt = torch.optim.AdamW(opt_params, lr=args.lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    losses = []
    for step, (x, y) in enumerate(batches):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.lr, 30, 300)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "autocast"):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        if mode == "bf16-master":
            for m, p in zip(master, params):
                m.grad = p.grad.float()
                p.grad = None
        torch.nn.utils.clip_grad_norm_(opt_params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if mode == "bf16-master":
            with torch.no_grad():
                for m, p in zip(master, params):
                    p.copy_(m)
        losses.append(loss.item())
    return losses


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--config", default=os.path.join(here, "..", "specs", "train", "tiny-llama.json"))
    ap.add_argument("--data", required=True)
    ap.add_argument("--init-from", default="")
    ap.add_argument("--json", default="", help="write each bf16 run's largest per-step relative difference here")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args()
    d = json.load(open(args.config))
    d.pop("torch_dtype", None)
    cfg = transformers.AutoConfig.for_model(**d)
    cfg._attn_implementation = "eager"
    torch.manual_seed(1234)
    source = (transformers.LlamaForCausalLM.from_pretrained(args.init_from, dtype=torch.float32) if args.init_from
              else transformers.LlamaForCausalLM(cfg))
    init = {k: v.float().cuda() for k, v in source.state_dict().items()}
    tokens = read_tokens(args.data)
    g = torch.Generator().manual_seed(7)
    batches = []
    for _ in range(args.steps):
        starts = torch.randint(0, len(tokens) - args.seq - 1, (args.batch,), generator=g)
        rows = torch.stack([tokens[s:s + args.seq + 1] for s in starts]).cuda()
        batches.append((rows[:, :-1], rows[:, 1:]))
    ref = run("fp32", cfg, init, batches, args)
    print("bf16_drift: torch %s, transformers %s, %s; %d steps of %d x %d tokens; fp32 loss %.4f -> %.4f"
          % (torch.__version__, transformers.__version__, torch.cuda.get_device_name(), args.steps, args.batch,
             args.seq, ref[0], ref[-1]))
    largest = {}
    for mode in ("bf16-master", "autocast"):
        ours = run(mode, cfg, init, batches, args)
        rel = [abs(a - b) / b for a, b in zip(ours, ref)]
        largest[mode] = max(rel)
        worst = max(range(len(rel)), key=rel.__getitem__)
        tail = sum(ours[-20:]) / 20, sum(ref[-20:]) / 20
        print("bf16_drift: %-11s largest per-step loss difference %.3e relative (step %d: %.4f vs %.4f); "
              "mean of the last 20 steps %.4f vs %.4f (%+.2f%%)"
              % (mode, rel[worst], worst + 1, ours[worst], ref[worst], tail[0], tail[1],
                 100 * (tail[0] - tail[1]) / tail[1]))
    if args.json:
        json.dump(largest, open(args.json, "w"))


if __name__ == "__main__":
    main()
