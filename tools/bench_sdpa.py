#!/usr/bin/env python3
"""Times torch's scaled_dot_product_attention (flash, cuDNN and memory-efficient backends) on the attention
shape of issue 10's benchmark, for a side-by-side with our flash kernels (kernels_cuda_bench's
attention_forward / attention_backward lines, same shape, same run of tools/gpu-train.sh).

Shape: batch 4, seq 2048, 32 query heads, 8 kv heads, head_dim 64, causal, bf16; q, k, v laid out as our
decoder holds them (rows of [q | k | v] per token, so each is a strided [B, S, H, D] view, permuted to
torch's [B, H, S, D]). GQA: backends that take enable_gqa get the 8 kv heads; the others get K/V repeated to
32 heads before timing (same FLOPs). FLOPs as kernels_cuda_bench counts them: forward 2 B H S^2 D (the causal
half of QK^T and PV), backward 2.5 times that. Median of 20 timed calls after 3 warm-ups (cudaEvents).
A benchmark: it prints, it does not judge."""
import argparse
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

PEAK_TFLOPS = 989.0  # H200 SXM dense bf16


def median_ms(fn, reps=20, warmup=3):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=2048)
    p.add_argument("--q-heads", type=int, default=32)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--head-dim", type=int, default=64)
    a = p.parse_args()
    B, S, Hq, Hkv, D = a.batch, a.seq, a.q_heads, a.kv_heads, a.head_dim
    torch.manual_seed(0)
    rows = torch.randn(B, S, (Hq + 2 * Hkv) * D, device="cuda", dtype=torch.bfloat16)
    q = rows[..., : Hq * D].view(B, S, Hq, D).permute(0, 2, 1, 3)
    k = rows[..., Hq * D : (Hq + Hkv) * D].view(B, S, Hkv, D).permute(0, 2, 1, 3)
    v = rows[..., (Hq + Hkv) * D :].view(B, S, Hkv, D).permute(0, 2, 1, 3)
    flops = 2.0 * B * Hq * S * S * D
    print("torch %s, %s; attention B=%d S=%d Hq=%d Hkv=%d D=%d causal bf16" %
          (torch.__version__, torch.cuda.get_device_name(), B, S, Hq, Hkv, D))
    backends = [("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION),
                ("efficient", SDPBackend.EFFICIENT_ATTENTION)]
    for name, backend in backends:
        for gqa in (True, False):
            if gqa:
                qq, kk, vv = q, k, v
            else:
                qq = q
                kk = k.repeat_interleave(Hq // Hkv, dim=1)
                vv = v.repeat_interleave(Hq // Hkv, dim=1)
            qq, kk, vv = (t.detach().requires_grad_(True) for t in (qq, kk, vv))
            kwargs = {"enable_gqa": True} if gqa and Hq != Hkv else {}
            try:
                with sdpa_kernel([backend]):
                    out = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True, **kwargs)
                    grad = torch.randn_like(out)
                    fwd = median_ms(lambda: F.scaled_dot_product_attention(qq, kk, vv, is_causal=True, **kwargs))
                    out = F.scaled_dot_product_attention(qq, kk, vv, is_causal=True, **kwargs)

                    def backward():
                        torch.autograd.grad(out, (qq, kk, vv), grad, retain_graph=True)

                    bwd = median_ms(backward)
            except RuntimeError as e:
                print("  %-9s %-12s not available: %s" % (name, "gqa" if gqa else "repeated kv", str(e).split("\n")[0][:100]))
                continue
            print("  %-9s %-12s forward %7.3f ms %6.1f TFLOP/s %5.1f %%   backward %7.3f ms %6.1f TFLOP/s %5.1f %%" %
                  (name, "gqa" if gqa else "repeated kv", fwd, flops / fwd / 1e9, 100 * flops / fwd / 1e9 / PEAK_TFLOPS,
                   bwd, 2.5 * flops / bwd / 1e9, 100 * 2.5 * flops / bwd / 1e9 / PEAK_TFLOPS))


if __name__ == "__main__":
    main()
