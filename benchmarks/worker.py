"""One benchmark row in a process of its own: `python -m benchmarks.worker WORKLOAD
SYSTEM quick|full`, driven by benchmarks/suite.py over its stdin and stdout.

A process per system keeps the systems apart (their thread pools, OpenMP runtimes,
allocators and import costs), and makes the first call a fresh process's first call.
The protocol is one JSON object per line. The worker answers once when it is ready
(the first call timed and checked), then each request:
    {"op": "calibrate", "min_batch": s} -> {"number": calls per batch}
    {"op": "time"}                      -> {"seconds": per call, median-free: one batch}
    {"op": "finish"}                    -> {"note": ...} (the outputs checked again), then exits
"""
import gc
import json
import os
import sys


def main(argv):
    workload_name, system, size = argv
    # Library output (prints, TensorFlow's logs) must not land in the protocol: the
    # protocol keeps the real stdout, everything else writes to stderr.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(**message):
        channel.write(json.dumps(message) + "\n")

    from benchmarks import workloads

    workload = workloads.workload_named(workload_name, size == "quick")
    data = workload.setup(size == "quick")
    row = workloads.SystemRun(workload, system, data, workloads.expected_outputs(workload, data))
    row.prepare()
    send(ready=row.run is not None, first=row.first, kernels=row.kernels, note=row.note)
    number = 1
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "calibrate":
            number = workloads.batch_size(row.run, request["min_batch"])
            send(number=number)
        elif request["op"] == "time":
            gc.disable()  # as timeit does
            try:
                send(seconds=workloads.run_batch(row.run, number) / number / workload.calls)
            finally:
                gc.enable()
        elif request["op"] == "finish":
            row.finish()
            send(ok=row.run is not None, note=row.note)
            return


if __name__ == "__main__":
    main(sys.argv[1:])
