#!/usr/bin/python3
"""B9's memory on PyTorch's side, measured as b9_cnn measures nabla's.

Run:   /usr/bin/python3 bench/torch_b9_memory.py [--ref DIR] [--threads N]
Output: one JSON line on stdout.

torch_ref.py (in DIR: ../shared/bench-ref or $NABLA_BENCH_REF) prints no
memory figure for B9. This program imports it and runs its own B9 batches
(torch_ref.Cnn, Adam 1e-3, torch_ref.time_batches: 5 warm-up batches and 60
timed, batch 128, on torch_ref.load_fashion's data) at N threads (default 1),
the first training in the process (a second one would reuse memory that
PyTorch's allocator keeps from the first), and reads the process's resident
set from /proc/self/status:

  step_peak_mb  peak RSS during the 65 batches minus RSS before the first
                (model, optimizer and data already in memory)
  peak_rss_mb   peak RSS during the 65 batches (the whole process: the
                libraries and the data sets too)

The peak counter (VmHWM) is reset before the batches (/proc/self/clear_refs).
Its lines carry no ms_per_batch: the timing is torch_ref.py's.
"""
import argparse
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as torch_ref.py, before torch is imported


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    default = os.environ.get("NABLA_BENCH_REF", os.path.join(os.path.dirname(root), "shared", "bench-ref"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ref", default=default, help="folder of torch_ref.py")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.ref, "torch_ref.py")):
        sys.exit(f"torch_b9_memory: no torch_ref.py in {a.ref}")
    sys.path.insert(0, a.ref)
    import torch
    import torch_ref as tr

    Xtr, ytr, _, _ = tr.load_fashion()
    tr.set_threads(a.threads)
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    model = tr.Cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rss0 = tr.vm_kb("VmRSS") / 1024
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak-RSS counter (VmHWM)
    tr.time_batches(model, opt, Xtr, ytr, 128, 60, 5, gen)
    peak = tr.vm_kb("VmHWM") / 1024
    tr.emit(workload="B9", impl=tr.IMPL, threads=a.threads, batch=128, batches=60,
            step_peak_mb=round(peak - rss0, 1), peak_rss_mb=round(peak, 1))


if __name__ == "__main__":
    main()
