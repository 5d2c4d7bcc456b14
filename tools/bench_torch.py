#!/usr/bin/env python3
"""PyTorch baselines of the training speed benchmark (tools/gpu-train.sh bench), on the GPU machine.

Trains the model of --config (default the Llama-3.2-1B shape of specs/bench) at --seq x --batch on one GPU and
reports tokens/s, MFU and peak memory for each implementation asked for:

  eager    a compact Llama written here (below): embedding, RMSNorm with fp32 math (as transformers does it),
           q/k/v/o without bias, RoPE with the llama3 scaling, F.scaled_dot_product_attention(is_causal=True,
           enable_gqa=True) with no K/V repeat, SwiGLU MLP, final norm, tied LM head, mean cross-entropy of
           predicting tokens 1..S from tokens 0..S-1
  compile  the same module under torch.compile (default mode; fullgraph when it traces as one graph); the
           compile time (the first step) is printed and not timed
  hf       transformers.LlamaForCausalLM built from the same config (attn_implementation "sdpa"), loss from
           labels

Precision, the same for all three: fp32 parameters, forward and loss under torch.autocast(bfloat16), backward
outside it, gradient clipping to 1.0, torch.optim.AdamW(fused=True) over the fp32 parameters (lr 3e-4, betas
0.9/0.95, eps 1e-8, weight decay 0.1). Why autocast and not model.to(bfloat16): our trainer keeps bf16 weights
for the GEMMs, fp32 master weights and fp32 Adam moments; autocast over fp32 parameters is the plain PyTorch
setup with that memory model and that numerics (bf16 GEMMs, fp32 master update), whereas bf16 parameters under
AdamW would update in bf16 (no master copy) and use less memory, which is not the same training.

Data: random token ids (fixed seed) on the GPU, a pool of batches cycled through. The model is random-init from
the config dict: nothing is downloaded.

Timing: each step is bracketed by torch.cuda.synchronize(); after --warmup steps, --steps steps are timed.
tokens/s = batch x seq / median step time; MFU = tokens/s x FLOPs per token / 989e12, with FLOPs per token
6 N + 12 layers (heads x head_dim) seq, N = every parameter once (tied embedding once): the formula of our
trainer (Trainer::flops_per_token, runtime/src/trainer.cpp). Peak memory is torch.cuda.max_memory_allocated()
over the impl's model, optimizer and steps (the caching allocator's reserve and the CUDA context are not in it;
our trainer reports cudaMemGetInfo's memory in use, which includes both).

--parity first checks that the eager model is transformers' model: it copies the eager model's random weights
into LlamaForCausalLM and compares their fp32 losses and logits (1e-4 relative to the largest logit, the
fp32 CUDA tolerance of tools/gpu-train.sh check) and the RoPE inverse frequencies.

usage: bench_torch.py [--impl eager|compile|hf|all]... [--steps N] [--warmup W] [--seq S] [--batch B]
                      [--config CONFIG.json] [--json OUT.json] [--parity]
"""
import argparse
import gc
import json
import math
import os
import statistics
import sys
import time

import torch
import torch._dynamo
import torch.nn as nn
import torch.nn.functional as F

PEAK_FLOPS = 989e12  # H200 dense bf16, as the trainer's --peak-tflops 989
IMPLS = ("eager", "compile", "hf")


# ----------------------------------------------------------------------------------------------- the model

def head_dim_of(cfg):
    return cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]


def rope_inv_freq(cfg):
    """RoPE inverse frequencies in fp32, with the llama3 scaling when the config asks for it (the arithmetic of
    transformers' _compute_llama3_parameters). Accepts transformers 4 (rope_theta + rope_scaling) and 5
    (rope_parameters) configs."""
    params = cfg.get("rope_parameters") or cfg.get("rope_scaling") or {}
    theta = cfg.get("rope_theta", params.get("rope_theta", 10000.0))
    dim = head_dim_of(cfg)
    inv_freq = 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    rope_type = params.get("rope_type", params.get("type", "default"))
    if rope_type == "default":
        return inv_freq
    if rope_type != "llama3":
        raise ValueError("rope type %r is not written here (default and llama3 are)" % rope_type)
    factor = params["factor"]
    low, high = params["low_freq_factor"], params["high_freq_factor"]
    old_context = params["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv_freq
    # Long wavelengths are divided by factor, short ones kept, the band between interpolated smoothly.
    scaled = torch.where(wavelen > old_context / low, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    in_band = ~(wavelen < old_context / high) & ~(wavelen > old_context / low)
    return torch.where(in_band, smoothed, scaled)


def rotate_half(x):
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rope(x, cos, sin):
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin


class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype
        h = x.float()  # fp32 statistics and scaling, as transformers' LlamaRMSNorm
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(dtype)


class Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden = cfg["hidden_size"]
        self.heads, self.kv_heads, self.head_dim = cfg["num_attention_heads"], cfg["num_key_value_heads"], head_dim_of(cfg)
        self.q_proj = nn.Linear(hidden, self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(hidden, self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, hidden, bias=False)

    def forward(self, x, cos, sin):
        # Head counts from the projections' outputs (-1), so that tensor-parallel shards of q/k/v
        # (tools/bench_dist_torch.py) run this forward with their local heads.
        b, s, _ = x.shape
        q = self.q_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, s, -1, self.head_dim).transpose(1, 2)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        o = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=self.kv_heads != self.heads)
        return self.o_proj(o.transpose(1, 2).reshape(b, s, -1))


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        hidden, ffn = cfg["hidden_size"], cfg["intermediate_size"]
        self.gate_proj = nn.Linear(hidden, ffn, bias=False)
        self.up_proj = nn.Linear(hidden, ffn, bias=False)
        self.down_proj = nn.Linear(ffn, hidden, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])
        self.mlp = MLP(cfg)

    def forward(self, x, cos, sin):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Body(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg["vocab_size"], cfg["hidden_size"])
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg["num_hidden_layers"]))
        self.norm = RMSNorm(cfg["hidden_size"], cfg["rms_norm_eps"])


class Llama(nn.Module):
    """Module and parameter names are transformers' (model.layers.N.self_attn.q_proj.weight, ...), so that
    --parity can load this model's state dict into LlamaForCausalLM."""

    def __init__(self, cfg):
        super().__init__()
        self.model = Body(cfg)
        self.tied = cfg.get("tie_word_embeddings", False)
        if not self.tied:
            self.lm_head = nn.Linear(cfg["hidden_size"], cfg["vocab_size"], bias=False)
        self.register_buffer("inv_freq", rope_inv_freq(cfg), persistent=False)
        std = cfg.get("initializer_range", 0.02)
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, mean=0.0, std=std)

    def logits(self, input_ids):
        s = input_ids.shape[1]
        pos = torch.arange(s, device=input_ids.device, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq[None, :]  # [S, head_dim/2], fp32
        emb = torch.cat((freqs, freqs), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        x = self.model.embed_tokens(input_ids)
        for layer in self.model.layers:
            x = layer(x, cos, sin)
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.tied else self.lm_head.weight
        return F.linear(x, head)

    def forward(self, input_ids, targets):
        logits = self.logits(input_ids)
        return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))


# ----------------------------------------------------------------------------------------------- the runs

def num_parameters(model):
    return sum(p.numel() for p in model.parameters())  # parameters() yields a tied weight once


def flops_per_token(cfg, n_params, seq):
    """Trainer::flops_per_token: 6 N + 12 layers (heads x head_dim) seq."""
    return 6.0 * n_params + 12.0 * cfg["num_hidden_layers"] * cfg["num_attention_heads"] * head_dim_of(cfg) * seq


def hf_config(cfg, attn="sdpa"):
    import transformers
    c = json.loads(json.dumps(cfg))  # a deep copy: transformers 5 adopts and edits the rope_scaling dict
    c.pop("torch_dtype", None)  # the parameters are fp32 here; transformers 5 calls it dtype anyway
    c.pop("dtype", None)
    # for_model takes rope_theta + rope_scaling (transformers 4; 5 converts them) and rope_parameters (5)
    return transformers.AutoConfig.for_model(**c, attn_implementation=attn)


def build_hf(cfg):
    import transformers
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(hf_config(cfg)).float()
    if model.config.tie_word_embeddings and model.lm_head.weight is not model.model.embed_tokens.weight:
        raise RuntimeError("transformers did not tie lm_head to embed_tokens")
    if model.config._attn_implementation != "sdpa":
        raise RuntimeError("transformers chose attention %r, not sdpa" % model.config._attn_implementation)
    return model


def build(impl, cfg, seed):
    """The model and the loss callable: loss_fn(tokens [B, S+1]) -> scalar loss."""
    torch.manual_seed(seed)
    if impl == "hf":
        model = build_hf(cfg)
        model.train()
        # labels = input_ids: transformers shifts them itself (predicts 1..S-1 from 0..S-2 over the same S tokens)
        return model, lambda t: model(input_ids=t[:, :-1], labels=t[:, :-1], use_cache=False).loss
    with torch.device("cuda"):
        model = Llama(cfg)
    model.train()
    if impl == "eager":
        return model, lambda t: model(t[:, :-1], t[:, 1:])
    compiled = torch.compile(model, fullgraph=True)
    return model, lambda t: compiled(t[:, :-1], t[:, 1:])


def train_step(loss_fn, opt, params, tokens):
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        loss = loss_fn(tokens)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.detach()


def timed(fn):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def bench(impl, cfg, args):
    torch.cuda.reset_peak_memory_stats()
    model, loss_fn = build(impl, cfg, args.seed)
    params = list(model.parameters())
    n_params = num_parameters(model)
    opt = torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, fused=True)
    gen = torch.Generator(device="cuda")
    gen.manual_seed(args.seed)
    pool = torch.randint(0, cfg["vocab_size"], (min(args.steps + args.warmup, 8), args.batch, args.seq + 1),
                         device="cuda", generator=gen)
    rec = {"impl": impl, "n_params": n_params}
    losses, first_s = [], None
    for i in range(args.warmup):
        try:
            loss, secs = timed(lambda: train_step(loss_fn, opt, params, pool[i % len(pool)]))
        except Exception as e:  # noqa: BLE001 -- fullgraph may not trace: compile again allowing graph breaks
            if impl != "compile" or i > 0:
                raise
            print("bench_torch: compile: fullgraph=True failed (%s: %s); compiling with graph breaks"
                  % (type(e).__name__, str(e).splitlines()[0] if str(e) else ""))
            torch._dynamo.reset()
            opt.zero_grad(set_to_none=True)
            compiled = torch.compile(model)
            loss_fn = lambda t: compiled(t[:, :-1], t[:, 1:])  # noqa: E731
            rec["fullgraph"] = False
            loss, secs = timed(lambda: train_step(loss_fn, opt, params, pool[i % len(pool)]))
        if i == 0:
            first_s = secs
        losses.append(loss)
    if impl == "compile":
        rec.setdefault("fullgraph", True)
        rec["compile_s"] = first_s
        print("bench_torch: compile: first step (compiling) %.1f s, fullgraph %s" % (first_s, rec["fullgraph"]))
    times = []
    for i in range(args.steps):
        loss, secs = timed(lambda: train_step(loss_fn, opt, params, pool[(args.warmup + i) % len(pool)]))
        times.append(secs)
        losses.append(loss)
    med, mean = statistics.median(times), statistics.mean(times)
    tps = args.batch * args.seq / med
    fpt = flops_per_token(cfg, n_params, args.seq)
    rec.update({
        "tokens_per_s": tps, "tokens_per_s_mean": args.batch * args.seq / mean, "step_ms_median": 1e3 * med,
        "step_ms_mean": 1e3 * mean, "mfu": tps * fpt / PEAK_FLOPS, "flops_per_token": fpt,
        "peak_mem_bytes": torch.cuda.max_memory_allocated(), "peak_reserved_bytes": torch.cuda.max_memory_reserved(),
        "first_loss": losses[0].item(), "last_loss": losses[-1].item(), "steps": args.steps, "warmup": args.warmup,
        "seq": args.seq, "batch": args.batch})
    print("bench_torch: %s: %.0f tok/s, MFU %.1f%%, peak mem %.1f GiB, step %.1f ms (median of %d)"
          % (impl, tps, 100 * rec["mfu"], rec["peak_mem_bytes"] / 2**30, rec["step_ms_median"], args.steps))
    print("bench_torch: %s: N %d, loss %.4f -> %.4f, step mean %.1f ms" % (impl, n_params, rec["first_loss"],
                                                                        rec["last_loss"], rec["step_ms_mean"]))
    del model, loss_fn, params, opt, pool, losses
    return rec


def free_memory():
    gc.collect()
    torch._dynamo.reset()
    torch.cuda.empty_cache()


def parity(cfg, seed, tol=1e-4):
    """The eager model's random weights in transformers' LlamaForCausalLM: the same logits, loss, inv_freq (fp32)."""
    torch.manual_seed(seed)
    with torch.device("cuda"):
        ours = Llama(cfg)
    hf = build_hf(cfg)
    missing, unexpected = hf.load_state_dict(ours.state_dict(), strict=False)
    allowed = {"lm_head.weight"} if cfg.get("tie_word_embeddings", False) else set()
    if unexpected or set(missing) - allowed:
        raise RuntimeError("state dicts differ: missing %s, unexpected %s" % (missing, unexpected))
    ours.eval()
    hf.eval()
    ok = True
    hf_inv = getattr(getattr(hf.model, "rotary_emb", None), "inv_freq", None)
    if hf_inv is not None:
        inv_rel = ((hf_inv.float() - ours.inv_freq).abs() / hf_inv.float().abs()).max().item()
        ok &= inv_rel <= 1e-6  # a few fp32 ulps: the same formula, pow and division maybe in another order
        print("bench_torch: parity: inv_freq largest relative difference %.2e" % inv_rel)
    gen = torch.Generator(device="cuda")
    gen.manual_seed(seed)
    tokens = torch.randint(0, cfg["vocab_size"], (2, 257), device="cuda", generator=gen)
    with torch.no_grad():
        lo = ours.logits(tokens[:, :-1]).float()
        lh = hf(input_ids=tokens[:, :-1], use_cache=False).logits.float()
        loss_o = F.cross_entropy(lo.reshape(-1, lo.shape[-1]), tokens[:, 1:].reshape(-1)).item()
        loss_h = F.cross_entropy(lh.reshape(-1, lh.shape[-1]), tokens[:, 1:].reshape(-1)).item()
        logit_rel = ((lo - lh).abs().max() / lh.abs().max()).item()
    loss_rel = abs(loss_o - loss_h) / abs(loss_h)
    ok &= logit_rel <= tol and loss_rel <= tol
    print("bench_torch: parity: %s: logits %.2e of the largest, loss %.6f vs transformers %.6f (%.2e), tol %.0e"
          % ("PASS" if ok else "FAIL", logit_rel, loss_o, loss_h, loss_rel, tol))
    del ours, hf, lo, lh
    return ok


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--impl", action="append", choices=IMPLS + ("all",))
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--seq", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--config", default=os.path.join(here, "..", "specs", "models", "Llama-3.2-1B.json"))
    ap.add_argument("--json", help="write one record per impl (a JSON list)")
    ap.add_argument("--parity", action="store_true", help="check the eager model against transformers first")
    ap.add_argument("--seed", type=int, default=1234)
    args = ap.parse_args()
    if args.warmup < 1 or args.steps < 1:
        ap.error("--warmup and --steps must be at least 1")
    impls = [i for i in IMPLS if not args.impl or "all" in args.impl or i in args.impl]
    cfg = json.load(open(args.config))
    try:
        import transformers
        tf_version = transformers.__version__
    except ImportError:
        tf_version = None
    gpu = torch.cuda.get_device_name()
    print("bench_torch: torch %s (CUDA %s), transformers %s, %s; %s, seq %d, micro-batch %d, %d+%d steps"
          % (torch.__version__, torch.version.cuda, tf_version or "not installed", gpu,
             os.path.basename(args.config), args.seq, args.batch, args.warmup, args.steps))
    status = 0
    if args.parity:
        try:
            status |= 0 if parity(cfg, args.seed) else 1
        except Exception as e:  # noqa: BLE001 -- report it, the speed runs still tell something
            print("bench_torch: parity: FAIL: %s: %s" % (type(e).__name__, e))
            status = 1
        free_memory()
    records = []
    for impl in impls:
        try:
            rec = bench(impl, cfg, args)
        except Exception as e:  # noqa: BLE001 -- one impl failing (OOM, no transformers) leaves the others
            print("bench_torch: %s: FAIL: %s: %s" % (impl, type(e).__name__, e))
            rec, status = {"impl": impl, "error": "%s: %s" % (type(e).__name__, e)}, 1
        rec.update({"gpu": gpu, "torch": torch.__version__, "transformers": tf_version})
        records.append(rec)
        free_memory()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(records, f, indent=1)
    return status


if __name__ == "__main__":
    sys.exit(main())
