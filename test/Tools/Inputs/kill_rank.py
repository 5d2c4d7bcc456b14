"""kill_rank.py RANK CSV LINES LIMIT_S -- CMD...: runs CMD (a launcher of ranks), and once the CSV log CSV has
LINES lines (the job is mid-training), SIGKILLs the process of global rank RANK (found by its launcher's rank
variable, RANK, OMPI_COMM_WORLD_RANK or PMI_RANK, among CMD's descendants). Then it waits for CMD to end and prints what a fault test checks:
  kill_rank: killed rank R (pid P) after N log lines
  kill_rank: the job ended with status S, T s after the kill (limit L s)
Exits 1 if the job never reached LINES lines, the rank was not found, the job succeeded, or it took longer than
LIMIT_S to end after the kill (it is then killed)."""
import os
import signal
import subprocess
import sys
import time


def descendants(root):
    children = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(pid))
    out, todo = [], [root]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def rank_of(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            env = dict(item.split(b"=", 1) for item in f.read().split(b"\0") if b"=" in item)
        for key in (b"RANK", b"OMPI_COMM_WORLD_RANK", b"PMI_RANK"):  # torchrun, Open MPI, MPICH
            if key in env:
                return int(env[key])
    except (OSError, ValueError):
        pass
    return None


def main():
    sep = sys.argv.index("--")
    rank, csv, lines, limit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    job = subprocess.Popen(sys.argv[sep + 1:])
    start = time.monotonic()
    while True:
        if job.poll() is not None:
            print(f"kill_rank: the job ended (status {job.returncode}) before {lines} log lines")
            return 1
        try:
            with open(csv) as f:
                if sum(1 for _ in f) >= lines:
                    break
        except OSError:
            pass
        if time.monotonic() - start > 120:
            job.kill()
            print(f"kill_rank: no {lines} log lines within 120 s")
            return 1
        time.sleep(0.02)
    victims = [p for p in descendants(job.pid) if rank_of(p) == rank]
    if not victims:
        job.kill()
        print(f"kill_rank: no process of rank {rank} under the job")
        return 1
    # the rank's own process: the deepest one holding RANK (a wrapper such as `env` execs into it anyway)
    victim = victims[-1]
    os.kill(victim, signal.SIGKILL)
    killed = time.monotonic()
    print(f"kill_rank: killed rank {rank} (pid {victim}) after {lines} log lines", flush=True)
    try:
        status = job.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        job.kill()
        print(f"kill_rank: the job was still running {limit:g} s after the kill")
        return 1
    took = time.monotonic() - killed
    print(f"kill_rank: the job ended with status {status}, {took:.1f} s after the kill (limit {limit:g} s)")
    return 1 if status == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
