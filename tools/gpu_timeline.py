#!/usr/bin/env python3
"""Reads the CSV of tools/gpu-timeline/inject.cpp (every kernel, memcpy and memset a process ran on the GPU)
and reports, per training step, how long the GPU was busy and how long it sat idle, and which kernels took
the time. A benchmark tool: it prints, it does not judge.

Steps: a step starts at a kernel whose name matches --step-start (default: our train's and torch's embedding
forward, the first kernel of a step) and ends where the next one starts. For each step:
  span  the GPU time from this step's first kernel to the next step's first kernel
  busy  the union of the kernel / memcpy / memset intervals within the span (overlapping streams counted once)
  idle  span - busy: what launch overhead, host work and synchronizations cost the GPU. CUDA graphs could win
        back at most this (they remove launch gaps, not host syncs).
The last step (no next start) and --skip warm-up steps are left out; the figures are medians over the rest.
--gaps K adds where the idle time is: the K (operation before, operation after) pairs whose idle gaps cost the
most, per step (a gap lies between the end of all GPU work so far and the next operation's start).

usage: gpu_timeline.py CSV [--step-start REGEX] [--skip N] [--top K] [--gaps K] [--label TEXT]"""
import argparse
import collections
import csv
import re
import statistics
import sys


def shorten(name):
    name = name.replace("(anonymous namespace)", "{anon}")
    name = re.sub(r"\(.*", "", name)  # drop the argument list
    name = re.sub(r"^void ", "", name)
    return name[:96]


def union_length(intervals):
    total, cur_start, cur_end = 0, None, None
    for s, e in sorted(intervals):
        if cur_end is None or s > cur_end:
            if cur_end is not None:
                total += cur_end - cur_start
            cur_start, cur_end = s, e
        else:
            cur_end = max(cur_end, e)
    if cur_end is not None:
        total += cur_end - cur_start
    return total


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("csv")
    p.add_argument("--step-start", default=r"embedding_forward_kernel",
                   help="regex of the first kernel of a step (default: our train's embedding forward)")
    p.add_argument("--skip", type=int, default=2, help="warm-up steps left out (default 2)")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--gaps", type=int, default=0, help="list the K costliest kinds of idle gap (default none)")
    p.add_argument("--label", default="")
    a = p.parse_args()

    rows = []
    with open(a.csv) as f:
        for r in csv.DictReader(f):
            rows.append((int(r["start_ns"]), int(r["end_ns"]), r["kind"], r["name"]))
    rows.sort()
    if not rows:
        sys.exit("gpu_timeline: no records in %s" % a.csv)
    starter = re.compile(a.step_start)
    starts = []
    for s, _, kind, name in rows:
        if kind == "k" and starter.search(name):
            starts.append(s)
    steps = [(starts[i], starts[i + 1]) for i in range(len(starts) - 1)]
    if len(steps) <= a.skip:
        print("gpu_timeline: %d step starts matched %r; the first kernels are:" % (len(starts), a.step_start))
        for r in rows[:8]:
            print("    " + shorten(r[3]))
        sys.exit(1)
    steps = steps[a.skip:]
    spans, busys, idles, counts = [], [], [], []
    per_kernel = collections.defaultdict(lambda: [0, 0])  # name -> [calls, ns] over the measured steps
    per_gap = collections.defaultdict(lambda: [0, 0])  # (before, after) -> [gaps, ns] over the measured steps
    j = 0
    for s0, s1 in steps:
        while j < len(rows) and rows[j][0] < s0:
            j += 1
        k, intervals = j, []
        busy_until, last = None, None  # the end of all work so far in the step, and the op that reached it
        while k < len(rows) and rows[k][0] < s1:
            st, en, kind, name = rows[k]
            intervals.append((st, min(en, s1)))
            if busy_until is not None and st > busy_until:
                pg = per_gap[(last, shorten(name))]
                pg[0] += 1
                pg[1] += st - busy_until
            if busy_until is None or en > busy_until:
                busy_until, last = en, shorten(name)
            pk = per_kernel[shorten(name)]
            pk[0] += 1
            pk[1] += en - st
            k += 1
        span, busy = s1 - s0, union_length(intervals)
        spans.append(span)
        busys.append(busy)
        idles.append(span - busy)
        counts.append(len(intervals))
        if busy_until is not None and s1 > busy_until:  # the gap before the next step's first operation
            pg = per_gap[(last, "(next step)")]
            pg[0] += 1
            pg[1] += s1 - busy_until
    n = len(steps)
    ms = lambda ns: ns / 1e6  # noqa: E731
    label = (a.label + ": ") if a.label else ""
    print("%s%d steps measured (after %d warm-up): median step span %.3f ms, GPU busy %.3f ms, idle %.3f ms "
          "(%.1f%%), %d GPU operations a step"
          % (label, n, a.skip, ms(statistics.median(spans)), ms(statistics.median(busys)),
             ms(statistics.median(idles)), 100 * statistics.median(i / s for i, s in zip(idles, spans)),
             statistics.median(counts)))
    print("%s%-96s %7s %10s %9s" % ("", "kernel (per step)", "calls", "ms", "us/call"))
    total = sum(v[1] for v in per_kernel.values())
    for name, (calls, ns) in sorted(per_kernel.items(), key=lambda kv: -kv[1][1])[:a.top]:
        print("%-96s %7.0f %10.3f %9.1f" % (name, calls / n, ms(ns) / n, ns / calls / 1e3))
    print("%-96s %7s %10.3f" % ("all GPU operations", "", ms(total) / n))
    if a.gaps > 0:
        print("%-96s %7s %10s %9s" % ("idle gap (per step): the operation before -> the one after", "gaps", "ms", "us/gap"))
        for (before, after), (gaps, ns) in sorted(per_gap.items(), key=lambda kv: -kv[1][1])[:a.gaps]:
            print("%-96s %7.0f %10.3f %9.1f" % ((before + " -> " + after)[:96], gaps / n, ms(ns) / n, ns / gaps / 1e3))


if __name__ == "__main__":
    main()
