#!/usr/bin/env python3
"""Draws the README's plots from Google Benchmark JSON (bench/run.sh output) with gnuplot.

    bench/plot.py RESULTS_DIR OUT_DIR

RESULTS_DIR holds <topology>.json files; OUT_DIR receives throughput.png, stage_scaling.png and
latency.png plus the .dat files they were drawn from. Rows missing from the JSON are left out
(a partial run still draws what it has).
"""
import json
import os
import re
import subprocess
import sys


def load(results_dir):
    rows = {}
    for name in os.listdir(results_dir):
        if not name.endswith(".json"):
            continue
        with open(os.path.join(results_dir, name)) as f:
            try:
                data = json.load(f)
            except json.JSONDecodeError:
                continue
        for b in data.get("benchmarks", []):
            rows[b["name"]] = b
    return rows


def find(rows, pattern):
    rx = re.compile(pattern)
    for name, b in rows.items():
        if rx.search(name):
            return b
    return None


# (label, regex over benchmark names): throughput with the producer reserving 32 at a time.
THROUGHPUT = [
    ("1->1 rondo thread stage", r"^one_to_one_rondo_dsl/batch:32/.*linger:0"),
    ("1->1 rondo coroutine (async)", r"^one_to_one_rondo_coro_async/batch:32/"),
    ("1->1 boost spsc", r"^one_to_one_boost_spsc/batch:32/"),
    ("1->1 moodycamel", r"^one_to_one_moodycamel_cq/batch:32/"),
    ("1->1 mutex+cv", r"^one_to_one_mutex_cv/batch:32/"),
    ("pipeline3 rondo threads (sleeping)", r"^pipeline_rondo/sleeping/batch:32/"),
    ("pipeline3 rondo runtime (2 ctx)", r"^pipeline_rondo_runtime/batch:32/events:\d+/stages:3/coro_producer:1/placement:0"),
    ("pipeline3 rondo runtime (1 ctx)", r"^pipeline_rondo_runtime/batch:32/events:\d+/stages:3/coro_producer:1/placement:2"),
    ("pipeline3 boost spsc chain", r"^pipeline_boost_spsc/batch:32/"),
    ("pipeline3 mutex+cv chain", r"^pipeline_mutex_cv/batch:32/"),
    ("pipeline6 rondo runtime (2 ctx)", r"^pipeline_rondo_runtime/batch:32/events:\d+/stages:6/coro_producer:1/placement:0"),
    ("diamond rondo (yielding)", r"^diamond_rondo/yielding/batch:32/"),
    ("diamond boost spsc", r"^diamond_boost_spsc/batch:32/"),
    ("3->1 rondo (yielding)", r"^many_to_one_rondo/yielding/batch:32/"),
    ("3->1 moodycamel", r"^many_to_one_moodycamel_cq/batch:32/"),
]

LATENCY = [
    ("cache-line ping-pong (floor)", r"^ping_pong_harness_atomics"),
    ("rondo thread stages", r"^ping_pong_rondo_dsl"),
    ("rondo coroutine, spinning", r"^ping_pong_rondo_coroutine/spin"),
    ("boost spsc", r"^ping_pong_boost_spsc"),
    ("rondo coroutine, parked", r"^ping_pong_rondo_coroutine/park"),
    ("rondo context, idle-polling", r"^wakeup_rondo/polling"),
    ("raw futex", r"^wakeup_futex"),
    ("rondo context, asleep", r"^wakeup_rondo/sleeping"),
]


def gnuplot(dat, script):
    """Draws `script` unless its data file is empty (those rows were not run)."""
    if os.path.getsize(dat) == 0:
        print("plot.py: no rows for", os.path.basename(dat), "- skipped")
        return
    subprocess.run(["gnuplot"], input=script.encode(), check=True)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    results, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    rows = load(results)

    # 1. Throughput by topology.
    dat = os.path.join(out, "throughput.dat")
    with open(dat, "w") as f:
        for label, rx in THROUGHPUT:
            b = find(rows, rx)
            if b and "items_per_second" in b:
                rondo = 1 if label.split(" ", 1)[1].startswith("rondo") else 0
                f.write('"%s" %.1f %d\n' % (label, b["items_per_second"] / 1e6, rondo))
    gnuplot(dat, f"""
set terminal pngcairo size 1000,560 font "sans,10"
set output "{out}/throughput.png"
set title "Throughput by topology, producer batch 32, 2-core VM (M events/s, higher is better)"
set style fill solid 0.8 border -1
set boxwidth 0.7
set xtics rotate by -35 left nomirror
set ytics nomirror
set grid ytics
set key off
set yrange [0:*]
set bmargin 9
set rmargin 10
plot "{dat}" using 0:2:($3 > 0 ? 0x1f77b4 : 0xaaaaaa):xtic(1) with boxes lc rgb variable, \
     "" using 0:2:(sprintf("%.0f", $2)) with labels offset 0,0.7
""")

    # 2. Stage scaling: thread stages vs coroutine stages on two contexts.
    dat = os.path.join(out, "stage_scaling.dat")
    with open(dat, "w") as f:
        for k in (1, 2, 3, 4, 6, 8):
            t = find(rows, rf"^stage_scaling/coroutines:0/stages:{k}/")
            c = find(rows, rf"^stage_scaling/coroutines:1/stages:{k}/")
            if t and c:
                f.write("%d %.1f %.1f\n" % (k, t["items_per_second"] / 1e6, c["items_per_second"] / 1e6))
    gnuplot(dat, f"""
set terminal pngcairo size 800,480 font "sans,10"
set output "{out}/stage_scaling.png"
set title "Stages in a chain on 2 cores, batch 32 (M events/s)"
set xlabel "stages"
set ylabel "M events/s"
set grid
set key top right
set yrange [0:*]
set xtics (1, 2, 3, 4, 6, 8)
plot "{dat}" using 1:3 with linespoints lw 2 pt 7 title "coroutine stages, runtime of 2 contexts", \
     "" using 1:2 with linespoints lw 2 pt 5 title "thread per stage (yielding)"
""")

    # 3. Latency percentiles (round trip).
    dat = os.path.join(out, "latency.dat")
    with open(dat, "w") as f:
        for label, rx in LATENCY:
            b = find(rows, rx)
            if b and "p50_ns" in b:
                f.write('"%s" %.0f %.0f\n' % (label, b["p50_ns"], b.get("p99_ns", b["p50_ns"])))
    gnuplot(dat, f"""
set terminal pngcairo size 1000,520 font "sans,10"
set output "{out}/latency.png"
set title "Round-trip latency, 2-core VM (ns, log scale, lower is better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set logscale y
set yrange [100:*]
set key top left
set grid ytics
set xtics rotate by -30 left nomirror
set bmargin 8
plot "{dat}" using 2:xtic(1) title "p50" lc rgb "#1f77b4", "" using 3 title "p99" lc rgb "#ff7f0e"
""")
    print("plots written to", out)


if __name__ == "__main__":
    main()
