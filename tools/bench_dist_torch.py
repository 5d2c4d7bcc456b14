#!/usr/bin/env python3
"""The PyTorch baseline of issue 11's speed run: DTensor tensor parallelism + FSDP2, on several GPUs.

    torchrun --standalone --nproc-per-node G tools/bench_dist_torch.py --tp T [--config C.json] [--seq S]
             [--batch B] [--steps N] [--warmup W] [--compile] [--json OUT.json]

The model is bench_torch.py's eager Llama (transformers' module and parameter names, random init from the
config; nothing is downloaded), by default the Llama-3.1-8B shape of specs/models, split as our trainer splits
it with the llama preset (DeepSpeed AutoTP's rules): q/k/v and gate/up column-parallel, o and down row-parallel
over the TP dimension of a (dp, tp) device mesh (contiguous ranks form a TP group, as in DeepSpeed and our
trainer); embedding, norms and LM head replicated over TP. Every decoder layer and then the whole model are
wrapped in FSDP2 (fully_shard) over the DP dimension: parameters, gradients and AdamW state sharded over DP
(ZeRO-3; our trainer runs ZeRO-1/2, which keeps the parameters whole), with MixedPrecisionPolicy(bf16 params,
fp32 reduce): the bf16 compute and fp32 master weights of bench_torch.py's autocast setup and of our trainer.
--compile compiles each decoder layer (torchtitan's way).

Each of the DP groups reads its own rows (random ids, fixed seed per DP rank), B rows of S tokens per step;
TP ranks of a group read the same rows. Optimizer: AdamW(fused where DTensors allow, else foreach), lr 3e-4,
betas 0.9/0.95, eps 1e-8, weight decay 0.1, gradient clipping to 1.0.

Timing: each step between torch.cuda.synchronize() and a barrier; the median of --steps steps after --warmup.
Reported on rank 0: tokens/s per GPU (dp x B x S / step time / G), MFU per GPU (tokens/s/GPU x FLOPs per token
/ 989e12, FLOPs per token 6 N + 12 layers (heads x head_dim) S as our trainer counts them) and the peak of
torch.cuda.max_memory_allocated() over the ranks.

Written for tools/multigpu-train.sh's speed step; it has not run yet (no multi-GPU machine was lent while it
was written)."""
import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_torch import PEAK_FLOPS, Llama, flops_per_token, num_parameters  # noqa: E402


def parallelize(model, mesh, compile_layers):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    tp_mesh, dp_mesh = mesh["tp"], mesh["dp"]
    if tp_mesh.size() > 1:
        plan = {
            "self_attn.q_proj": ColwiseParallel(), "self_attn.k_proj": ColwiseParallel(),
            "self_attn.v_proj": ColwiseParallel(), "self_attn.o_proj": RowwiseParallel(),
            "mlp.gate_proj": ColwiseParallel(), "mlp.up_proj": ColwiseParallel(), "mlp.down_proj": RowwiseParallel(),
        }
        for layer in model.model.layers:
            parallelize_module(layer, tp_mesh, plan)
    policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    for i, layer in enumerate(model.model.layers):
        if compile_layers:
            layer.compile()
        # the last layer's parameters are needed first in backward: keep them gathered after forward
        fully_shard(layer, mesh=dp_mesh, mp_policy=policy, reshard_after_forward=i < len(model.model.layers) - 1)
    fully_shard(model, mesh=dp_mesh, mp_policy=policy)
    return model


def clip_grad_norm(params, max_norm):
    """Clips to max_norm by the global L2 norm. The parameters are DTensors on two meshes (the layers' on
    (dp, tp), the root's on dp alone), which torch.nn.utils.clip_grad_norm_ cannot stack: each norm is made
    whole on its own mesh first."""
    sq = 0.0
    for p in params:
        if p.grad is None:
            continue
        n = torch.linalg.vector_norm(p.grad, dtype=torch.float32)
        if hasattr(n, "full_tensor"):
            n = n.full_tensor()
        sq = sq + n * n
    coef = min(1.0, max_norm / (float(torch.as_tensor(sq).sqrt()) + 1e-6))
    if coef < 1.0:
        for p in params:
            if p.grad is not None:
                p.grad.mul_(coef)


def make_optimizer(params):
    kw = dict(lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    try:
        return torch.optim.AdamW(params, fused=True, **kw), "fused"
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(params, foreach=True, **kw), "foreach"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--config", default=os.path.join(here, "..", "specs", "models", "Llama-3.1-8B.json"))
    ap.add_argument("--tp", type=int, required=True)
    ap.add_argument("--seq", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--json")
    args = ap.parse_args()

    from torch.distributed.device_mesh import init_device_mesh

    dist.init_process_group("nccl")
    rank, world = dist.get_rank(), dist.get_world_size()
    torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if world % args.tp:
        sys.exit("bench_dist_torch: --tp %d does not divide the %d ranks" % (args.tp, world))
    dp = world // args.tp
    mesh = init_device_mesh("cuda", (dp, args.tp), mesh_dim_names=("dp", "tp"))
    cfg = json.load(open(args.config))
    torch.manual_seed(0)  # the same initial weights on every rank (replicated parts must agree)
    with torch.device("cuda"):
        model = Llama(cfg)
    n_params = num_parameters(model)
    model = parallelize(model, mesh, args.compile)
    model.train()
    params = list(model.parameters())
    opt, opt_kind = make_optimizer(params)

    dp_rank = mesh["dp"].get_local_rank()
    gen = torch.Generator(device="cuda")
    gen.manual_seed(1000 + dp_rank)
    pool = torch.randint(0, cfg["vocab_size"], (4, args.batch, args.seq + 1), device="cuda", generator=gen)

    def step(i):
        nonlocal opt, opt_kind
        t = pool[i % len(pool)]
        loss = model(t[:, :-1], t[:, 1:])
        loss.backward()
        clip_grad_norm(params, 1.0)
        try:
            opt.step()
        except (RuntimeError, NotImplementedError) as e:  # fused AdamW over these DTensors: not in this torch
            if opt_kind != "fused" or i > 0:
                raise
            print("bench_dist_torch: fused AdamW failed (%s); foreach instead" % str(e).splitlines()[0])
            opt = torch.optim.AdamW(params, lr=3e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1, foreach=True)
            opt_kind = "foreach"
            opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for i in range(args.warmup + args.steps):
        torch.cuda.synchronize()
        dist.barrier()
        t0 = time.perf_counter()
        losses.append(step(i))
        torch.cuda.synchronize()
        dist.barrier()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    tokens_per_gpu = dp * args.batch * args.seq / med / world
    fpt = flops_per_token(cfg, n_params, args.seq)
    peak = torch.tensor([torch.cuda.max_memory_allocated()], device="cuda")
    dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    rec = {"impl": "dtensor-tp+fsdp2" + ("+compile" if args.compile else ""), "tp": args.tp, "dp": dp,
           "gpus": world, "seq": args.seq, "batch": args.batch, "n_params": n_params, "optimizer": opt_kind,
           "step_ms_median": 1e3 * med, "tokens_per_s_per_gpu": tokens_per_gpu,
           "mfu": tokens_per_gpu * fpt / PEAK_FLOPS, "peak_mem_bytes": int(peak.item()),
           "first_loss": losses[0].item(), "last_loss": losses[-1].item()}
    if rank == 0:
        print("bench_dist_torch: %s TP %d x DP %d: %.0f tok/s/GPU, MFU %.1f%%, peak mem %.1f GiB, step %.0f ms "
              "(median of %d), loss %.4f -> %.4f" % (rec["impl"], args.tp, dp, tokens_per_gpu, 100 * rec["mfu"],
                                                     rec["peak_mem_bytes"] / 2**30, rec["step_ms_median"],
                                                     args.steps, rec["first_loss"], rec["last_loss"]))
        if args.json:
            json.dump(rec, open(args.json, "w"), indent=1)
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
