"""The benchmark suite: value and gradient per call, every system side by side.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m benchmarks [--quick]
        [--workloads seed,mlp] [--systems tj-numba,numpy,jax] [--repeats N]

Each (workload, system) row runs in its own process (benchmarks/worker.py): the
systems do not share thread pools or allocators, and the first call is a fresh
process's first call (tracing and compiling; tapejit's Numba kernels come from the
disk cache once a run has compiled them). Before timing, every row's outputs are
checked against a float64 NumPy reference; a row that disagrees shows MISMATCH
instead of a time. The rows of a workload are timed in interleaved rounds (one batch
of each per round), so that a change of load on the machine hits them alike; a row's
time is the median of its rounds.

Each workload also gets its physical floor: the bytes a call must move (inputs read
once, outputs written once) over the machine's measured copy bandwidth, or its matmul
flops over the measured float32 matmul rate, whichever is larger. The MLP step is also
started cold: tapejit with an empty kernel cache, then again with that cache warm,
each in a new process.

Output: Markdown tables on stdout, and results.md, results.json and (with matplotlib)
results.png under benchmarks/results/. Systems that are not installed are skipped with
a note (`pip install -e ".[bench]"` installs the peers).
"""
import argparse
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

from benchmarks import workloads as W

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Shown in the header: they decide which OpenBLAS kernel and how many threads the BLAS-bound rows use.
BLAS_ENV = ("OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
MIN_BATCH = 0.02  # seconds per timed batch


# ============================================================================ machine

def installed(module):
    """Found without importing it (each system imports its library in its own process)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def best_of(run, repeats=5):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def machine_rates():
    """(copy bandwidth in bytes/s counting reads and writes, float32 matmul flop/s)."""
    src = np.ones(16 << 20, np.float32)
    dst = np.empty_like(src)
    bandwidth = 2 * src.nbytes / best_of(lambda: np.copyto(dst, src))
    a = np.ones((1024, 1024), np.float32)
    matmul = 2 * 1024 ** 3 / best_of(lambda: a @ a)
    return bandwidth, matmul


def blas_kernels():
    """Which BLAS libraries and kernels NumPy loaded, as threadpoolctl sees them."""
    try:
        import threadpoolctl
    except ImportError:
        return "threadpoolctl not installed"
    np.ones((2, 2)) @ np.ones((2, 2))  # load BLAS
    infos = threadpoolctl.threadpool_info()
    return ", ".join(f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
                     f"{i.get('num_threads')} threads" for i in infos if i.get("user_api") == "blas") or "no BLAS seen"


# ============================================================================ rows

class Row:
    """A system's worker process for one workload, and what it reported."""

    def __init__(self, workload, system, size, env):
        self.system = system
        self.name = W.SYSTEMS[system][0]
        self.samples = []
        self.seconds = None
        self.first = None
        self.kernels = self.note = ""
        self.log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.worker", workload.name, system, size],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log, text=True, cwd=ROOT, env=env)
        ready = self.ask(None)
        if ready is not None:
            self.first, self.kernels, self.note = ready["first"], ready["kernels"], ready["note"]
            if not ready["ready"]:
                self.close()

    @property
    def alive(self):
        return self.process.poll() is None

    def ask(self, request):
        """Send a request (None: only read) and return the answer, or None if the worker died."""
        try:
            if request is not None:
                self.process.stdin.write(json.dumps(request) + "\n")
                self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if line:
            return json.loads(line)
        self.process.wait()
        self.log.seek(0)
        lines = [ln for ln in self.log.read().splitlines() if ln.strip()]
        self.note = f"ERROR worker exited ({self.process.returncode}): {lines[-1] if lines else 'no output'}"
        self.seconds = None
        return None

    def close(self):
        if self.alive:
            self.process.stdin.close()
            self.process.wait()
        self.log.close()


def time_workload(workload, systems, size, repeats, env, progress):
    """The workload's rows, started one after the other (so first calls do not overlap),
    then timed in interleaved rounds."""
    rows = []
    for system in systems:
        progress(f"{workload.name}: {system} (first call)")
        if system not in workload.builders:  # no such row written for this workload
            continue
        rows.append(Row(workload, system, size, env))
    timed = [row for row in rows if row.alive]
    for row in timed:
        row.ask({"op": "calibrate", "min_batch": MIN_BATCH})
    for k in range(repeats):
        progress(f"{workload.name}: round {k + 1} of {repeats}")
        for row in timed:
            if row.alive:
                answer = row.ask({"op": "time"})
                if answer is not None:
                    row.samples.append(answer["seconds"])
    for row in timed:
        if row.alive:
            answer = row.ask({"op": "finish"})
            if answer is not None:
                row.note = answer["note"]
                if answer["ok"] and row.samples:
                    row.seconds = statistics.median(row.samples)
    for row in rows:
        row.close()
    return rows


def cold_and_warm(workload, size, env, progress):
    """tapejit's first call of `workload` in a new process with an empty kernel cache,
    then in another new process with that cache: (cold row, warm row)."""
    env = dict(env, TAPEJIT_CACHE_DIR=tempfile.mkdtemp(prefix="tapejit-bench-cold-"))
    started = []
    for label in ("cold", "warm"):
        progress(f"{workload.name}: tapejit first call, {label} kernel cache")
        row = Row(workload, "tj-numba", size, env)
        row.close()
        started.append(row)
    return started


# ============================================================================ tables

def format_seconds(s):
    if s is None:
        return ""
    if s >= 1:
        return f"{s:.2f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    if s >= 1e-6:
        return f"{s * 1e6:.1f} us"
    return f"{s * 1e9:.0f} ns"


def row_time(row):
    if row.seconds is not None:
        return format_seconds(row.seconds)
    return "MISMATCH" if "MISMATCH" in row.note else "ERROR"


def workload_table(result):
    rows = result["rows"]
    best = min((r.seconds for r in rows if r.seconds is not None), default=None)
    lines = [f"### {result['title']}",
             f"floor {format_seconds(result['floor'])} ({result['floor_reason']})", "",
             "| system | per call | x best | first call | kernels | note |", "|---|---:|---:|---:|---|---|"]
    for row in rows:
        ratio = f"{row.seconds / best:.2f}" if row.seconds is not None and best else ""
        note = row.note.replace("|", "\\|")
        lines.append(f"| {row.name} | {row_time(row)} | {ratio} | {format_seconds(row.first)} | {row.kernels} | {note} |")
    return "\n".join(lines) + "\n"


def summary_table(results, systems):
    """Workloads down, systems across: time per call and its ratio to the row's best."""
    head = "| workload | floor | " + " | ".join(W.SYSTEMS[s][0] for s in systems) + " |"
    lines = [head, "|---|---:|" + "---:|" * len(systems)]
    for result in results:
        by_system = {row.system: row for row in result["rows"]}
        best = min((r.seconds for r in result["rows"] if r.seconds is not None), default=None)
        cells = []
        for s in systems:
            row = by_system.get(s)
            if row is None:
                cells.append("")
            elif row.seconds is None:
                cells.append(row_time(row))
            else:
                mark = "**" if row.seconds == best else ""
                cells.append(f"{mark}{format_seconds(row.seconds)}{mark} ({row.seconds / best:.2f})")
        lines.append(f"| {result['name']} | {format_seconds(result['floor'])} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def start_table(cold, warm):
    return ("| tapejit MLP step, first call in a new process | time | kernels |\n|---|---:|---|\n"
            f"| empty kernel cache (cold compile) | {format_seconds(cold.first)} | {cold.kernels} {cold.note} |\n"
            f"| cache from the previous process (warm start) | {format_seconds(warm.first)} | {warm.kernels} {warm.note} |\n")


def as_json(header, results, start):
    def row(r):
        return {"system": r.system, "name": r.name, "seconds": r.seconds, "samples": r.samples,
                "first_call": r.first, "kernels": r.kernels, "note": r.note}
    return {"header": header,
            "workloads": [{"name": res["name"], "title": res["title"], "floor": res["floor"],
                           "floor_reason": res["floor_reason"], "rows": [row(r) for r in res["rows"]]}
                          for res in results],
            "mlp_start": {k: row(r) for k, r in start.items()}}


def plot(results, systems, path):
    """Bars per workload: each system's time over the row's best (log scale)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(results) * max(3, len(systems)) / 3 + 1.5))
    height = 0.8 / len(systems)
    colors = plt.get_cmap("tab20")  # 20 distinct colours: one per system
    for j, system in enumerate(systems):
        ys, ratios = [], []
        for i, result in enumerate(results):
            best = min((r.seconds for r in result["rows"] if r.seconds is not None), default=None)
            row = next((r for r in result["rows"] if r.system == system and r.seconds is not None), None)
            if row is not None and best:
                ys.append(i + j * height)
                ratios.append(row.seconds / best)
        ax.barh(ys, ratios, height=height, label=W.SYSTEMS[system][0], color=colors(j % colors.N))
    ax.set_xscale("log")
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(results))], [r["name"] for r in results])
    ax.invert_yaxis()
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("time per call / best system's (log scale; 1 = fastest)")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ============================================================================ main

def progress_bar(total):
    """(update(description), close()): a tqdm bar on stderr, or plain lines without tqdm."""
    try:
        from tqdm import tqdm
    except ImportError:
        def update(text):
            print(f"... {text}", file=sys.stderr, flush=True)
        return update, lambda: None
    bar = tqdm(total=total, file=sys.stderr, dynamic_ncols=True)

    def update(text):
        bar.set_description_str(text[:60])
        bar.update(1)
    return update, bar.close


def select(parser, wanted, choices, what):
    names = [s.strip() for s in wanted.split(",") if s.strip()]
    for s in names:
        if not any(c.startswith(s) for c in choices):
            parser.error(f"no {what} named {s!r}; choose from {', '.join(choices)}")
    return [c for c in choices if not names or any(c.startswith(s) for s in names)]


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes and fewer repeats (< 10 min)")
    parser.add_argument("--workloads", default="", help="comma-separated names or prefixes (default: all)")
    parser.add_argument("--systems", default="", help=f"comma-separated ids or prefixes: {', '.join(W.SYSTEMS)}")
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 7 quick, 15)")
    parser.add_argument("--out", default=RESULTS, help="directory for results.md/json/png")
    args = parser.parse_args(argv)
    repeats = args.repeats or (7 if args.quick else 15)
    size = "quick" if args.quick else "full"
    every = W.workloads(args.quick)
    selected = [w for w in every if w.name in select(parser, args.workloads, [w.name for w in every], "workload")]
    asked = select(parser, args.systems, list(W.SYSTEMS), "system")
    systems = [s for s in asked if installed(W.SYSTEMS[s][1])]
    missing = sorted({W.SYSTEMS[s][1] for s in asked if s not in systems})

    env = dict(os.environ)
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # an idle worker's OpenMP threads must not spin
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ROOT, env.get("PYTHONPATH")) if p)
    import numba

    import tapejit as tj
    from tapejit.runtime.kernel_cache import cache_dir
    bandwidth, matmul = machine_rates()
    header = [
        f"tapejit {tj.__version__}, numpy {np.__version__}, numba {numba.__version__}, "
        f"Python {platform.python_version()}, {platform.machine()} ({platform.processor() or 'cpu'}), "
        f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}",
        f"measured: copy bandwidth {bandwidth / 1e9:.1f} GB/s (read + write), float32 matmul "
        f"{matmul / 1e9:.0f} GFLOP/s",
        "BLAS: " + ", ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in BLAS_ENV) + f"; {blas_kernels()}",
        f"kernel cache: {cache_dir()}; not installed (no rows): {', '.join(missing) or 'none'}",
        f"load average {os.getloadavg()[0]:.2f} at start; each system in its own process, rows timed in "
        f"{repeats} interleaved rounds, median per call (value and gradient); first call timed apart; "
        f"outputs checked against float64 NumPy at rtol {W.RTOL}",
    ]
    print("\n".join(header) + "\n", flush=True)

    update, close = progress_bar(len(selected) * (len(systems) + repeats)
                                 + (2 if any(w.name == "mlp" for w in selected) else 0))
    results = []
    start = {}
    started = time.perf_counter()
    try:
        for workload in selected:
            data = workload.setup(args.quick)
            expected = W.expected_outputs(workload, data)
            moved = W.floor_bytes(data, expected[0])
            floor = max(moved / bandwidth, workload.flops / matmul)
            reason = (f"{workload.flops / 1e6:.0f} MFLOP at the matmul rate" if workload.flops / matmul > moved / bandwidth
                      else f"{moved / 1e6:.2f} MB at copy bandwidth")
            if workload.name == "mlp" and "tj-numba" in systems:
                start["cold"], start["warm"] = cold_and_warm(workload, size, env, update)
            rows = time_workload(workload, systems, size, repeats, env, update)
            result = {"name": workload.name, "title": workload.title, "floor": floor, "floor_reason": reason,
                      "rows": rows}
            results.append(result)
            print(workload_table(result), flush=True)
    finally:
        close()
    footer = f"total {time.perf_counter() - started:.0f} s, load average {os.getloadavg()[0]:.2f} at the end"
    summary = summary_table(results, systems)
    text = "\n".join(header) + "\n\n" + summary + "\n"
    if start:
        text += start_table(start["cold"], start["warm"]) + "\n"
    text += "\n".join(workload_table(r) for r in results) + "\n" + footer + "\n"
    print("## Summary (time per call; in brackets, over the best system of the row)\n\n" + summary)
    if start:
        print(start_table(start["cold"], start["warm"]))
    print(footer)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(as_json(header, results, start), f, indent=1)
    png = os.path.join(args.out, "results.png")
    print(f"wrote {args.out}/results.md, results.json" + (", results.png" if plot(results, systems, png) else
                                                           " (no results.png: matplotlib not installed)"))
