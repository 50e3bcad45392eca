#!/usr/bin/env python3
"""Turn the raw results of scripts/bench.sh into a Markdown report.

Usage: report.py RAW_DIR "nginx haproxy swarmgate"

RAW_DIR holds header.md, metrics.tsv (proxy rep case key value),
wrk/<proxy>.<rep>.<case>.txt (wrk --latency output of the measured run) and
h2load/<proxy>.<rep>.<case>.txt and .log (h2load output and its per-request log).
Every figure is the median over the repetitions.
"""
import glob
import os
import re
import statistics
import sys
from collections import defaultdict

NAMES = {"nginx-verbatim": "nginx (guide verbatim)", "nginx": "nginx", "haproxy": "HAProxy",
         "swarmgate": "swarmgate"}
UNIT = {"B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
TIME = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}
CASES = [  # case id, label
    ("get_c64", "GET 100 B, 64 conns"),
    ("get_c256", "GET 100 B, 256 conns"),
    ("big_c16", "GET 10 MiB, 16 conns"),
    ("upload_c16", "POST 1 MiB, 16 conns"),
    ("close_c64", "new conn per request, 64 conns"),
    ("h2_c64x10", "h2c GET 100 B, 64 conns x 10 streams"),
    ("idle", "10k idle conns"),
]
UPLOAD_BYTES = 1024 * 1024


def parse_wrk(text):
    m = {}
    r = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if r:
        m["rps"] = float(r.group(1))
    r = re.search(r"Transfer/sec:\s+([\d.]+)(\w+)", text)
    if r:
        m["mibps"] = float(r.group(1)) * UNIT[r.group(2)] / 1024**2
    for pct in ("50", "99"):
        r = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s|m|h)\s*$" % pct, text, re.M)
        if r:
            m["p" + pct] = float(r.group(1)) * TIME[r.group(2)]
    if m.get("p50") and m.get("p99") is not None:
        m["p99_p50"] = m["p99"] / m["p50"]
    r = re.search(r"(\d+) requests in", text)
    if r:
        m["requests"] = int(r.group(1))
    err = 0
    r = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if r:
        err += sum(int(x) for x in r.groups())
    m["sock_errors"] = err
    r = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    m["non2xx"] = int(r.group(1)) if r else 0
    return m


def parse_h2load(text, log_path):
    """h2load's summary, and p50/p99 from its --log-file (start, status, duration us)."""
    m = {}
    r = re.search(r"^finished in [\d.]+\w+, ([\d.]+) req/s", text, re.M)
    if r:
        m["rps"] = float(r.group(1))
    r = re.search(r"^requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", text, re.M)
    if r:
        m["requests"] = int(r.group(3))
        m["sock_errors"] = int(r.group(5)) + int(r.group(6))
    r = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.M)
    m["non2xx"] = int(r.group(3)) + int(r.group(4)) if r else 0
    durations = []
    if os.path.exists(log_path):
        with open(log_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2].isdigit():
                    durations.append(int(parts[2]) / 1000.0)
    if durations:
        durations.sort()
        m["p50"] = durations[len(durations) // 2]
        m["p99"] = durations[min(len(durations) - 1, int(len(durations) * 0.99))]
    return m


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def main():
    raw, proxies = sys.argv[1], sys.argv[2].split()
    # columns: the three always, nginx-verbatim (Kuscia's guide as written) first when it ran
    order = [p for p in NAMES if p != "nginx-verbatim" or p in proxies]
    # data[proxy][case][key] -> list over reps
    data = defaultdict(lambda: defaultdict(lambda: defaultdict(list)))
    for path in sorted(glob.glob(os.path.join(raw, "wrk", "*.txt"))):
        proxy, rep, case = os.path.basename(path)[:-4].split(".")
        with open(path) as f:
            for k, v in parse_wrk(f.read()).items():
                data[proxy][case][k].append(v)
    for path in sorted(glob.glob(os.path.join(raw, "h2load", "*.txt"))):
        proxy, rep, case = os.path.basename(path)[:-4].split(".")
        with open(path) as f:
            for k, v in parse_h2load(f.read(), path[:-4] + ".log").items():
                data[proxy][case][k].append(v)
    tsv = os.path.join(raw, "metrics.tsv")
    if os.path.exists(tsv):
        with open(tsv) as f:
            for line in f:
                proxy, rep, case, key, val = line.split()
                data[proxy][case][key].append(float(val))
    # derived per rep values
    for proxy in data:
        for case, d in data[proxy].items():
            if "accepts" in d and "requests" in d:
                d["connects_per_req"] = [a / r if r else None for a, r in zip(d["accepts"], d["requests"])]
            if "proxy_cpu_us" in d and "requests" in d:
                d["cpu_us_per_req"] = [c / r if r else None for c, r in zip(d["proxy_cpu_us"], d["requests"])]
            if case.startswith("upload") and "rps" in d:
                d["up_mibps"] = [r * UPLOAD_BYTES / 1024**2 for r in d["rps"]]
            if case == "idle" and "idle_after_kb" in d:
                d["bytes_per_conn"] = [
                    (a - b) * 1024 / n if n else None
                    for a, b, n in zip(d["idle_after_kb"], d["idle_before_kb"], d["idle_ok"])
                ]

    def get(proxy, case, key):
        return med(data.get(proxy, {}).get(case, {}).get(key, []))

    out = []
    with open(os.path.join(raw, "header.md")) as f:
        out.append(f.read().rstrip() + "\n")

    def fmt(v, kind):
        if v is None:
            return "–"
        if kind == "rps":
            return "%.1fk" % (v / 1000) if v >= 10000 else "%.0f" % v
        if kind == "ms":
            return "%.2f" % v
        if kind == "mib":
            return "%.0f" % v
        if kind == "mem":
            return "%.1f" % v
        if kind == "bytes":
            return "%.0f" % v
        if kind == "cpr":
            return "%.3f" % v if v >= 0.001 or v == 0 else "%.1e" % v
        return str(v)

    def ratio(a, b):
        return "–" if a is None or not b else "%.2f×" % (a / b)

    cols = [NAMES[p] for p in order]
    head = "| case | " + " | ".join(cols) + " | swarmgate/nginx | swarmgate/HAProxy |"
    sep = "|" + "---|" * (len(cols) + 3)

    def row(label, case, key, kind, scale=1.0):
        vals = {p: get(p, case, key) for p in order}
        vals = {p: (v * scale if v is not None else None) for p, v in vals.items()}
        cells = [fmt(vals[p], kind) for p in order]
        cells += [ratio(vals["swarmgate"], vals["nginx"]), ratio(vals["swarmgate"], vals["haproxy"])]
        return "| %s | %s |" % (label, " | ".join(cells))

    out.append("## Results (medians)\n")
    out.append(head)
    out.append(sep)
    for case, label in CASES[:2]:
        out.append(row(label + ": req/s", case, "rps", "rps"))
        out.append(row(label + ": p50 ms", case, "p50", "ms"))
        out.append(row(label + ": p99 ms", case, "p99", "ms"))
    out.append(row("GET 10 MiB, 16 conns: MiB/s", "big_c16", "mibps", "mib"))
    out.append(row("GET 10 MiB, 16 conns: p50 ms", "big_c16", "p50", "ms"))
    out.append(row("GET 10 MiB, 16 conns: p99 ms", "big_c16", "p99", "ms"))
    # fairness: every stream should progress at the same pace (issue 11: at most 2)
    out.append(row("GET 10 MiB, 16 conns: p99/p50 (fairness, lower is better)", "big_c16", "p99_p50", "ms"))
    out.append(row("POST 1 MiB, 16 conns: req/s", "upload_c16", "rps", "rps"))
    out.append(row("POST 1 MiB, 16 conns: MiB/s up", "upload_c16", "up_mibps", "mib"))
    out.append(row("new conn per request (Connection: close), 64 conns: req/s", "close_c64", "rps", "rps"))
    h2_label = dict(CASES)["h2_c64x10"]
    out.append(row(h2_label + ": req/s", "h2_c64x10", "rps", "rps"))
    out.append(row(h2_label + ": p50 ms", "h2_c64x10", "p50", "ms"))
    out.append(row(h2_label + ": p99 ms", "h2_c64x10", "p99", "ms"))
    for case, label in CASES[:6]:
        out.append(row("proxy CPU µs per request: " + label, case, "cpu_us_per_req", "ms"))
    out.append(row("idle conns: RSS before, MiB", "idle", "idle_before_kb", "mem", 1 / 1024))
    out.append(row("idle conns: RSS with them open, MiB", "idle", "idle_after_kb", "mem", 1 / 1024))
    out.append(row("idle conns: bytes per idle conn", "idle", "bytes_per_conn", "bytes"))
    out.append("")
    out.append("Ratios are swarmgate's value divided by the peer's: above 1 is better for req/s and MiB/s, "
               "below 1 is better for latency, CPU per request and memory. CPU per request is the proxy's "
               "user+system time (all its processes and threads) over the measured run divided by the requests "
               "wrk completed; it is less sensitive to other load on the machine than req/s.\n")

    out.append("## Upstream connects per request (origin stub_status accepts / wrk requests)\n")
    out.append("| case | " + " | ".join(cols) + " |")
    out.append("|" + "---|" * (len(cols) + 1))
    for case, label in CASES[:6]:
        out.append("| %s | %s |" % (label, " | ".join(fmt(get(p, case, "connects_per_req"), "cpr")
                                                        for p in order)))
    out.append("")

    out.append("## Peak RSS of the proxy during the case, MiB (sum over its processes, sampled every 0.1 s)\n")
    out.append("| case | " + " | ".join(cols) + " |")
    out.append("|" + "---|" * (len(cols) + 1))
    for case, label in CASES:
        out.append("| %s | %s |" % (label, " | ".join(
            fmt(get(p, case, "peak_rss_kb") / 1024 if get(p, case, "peak_rss_kb") else None, "mem")
            for p in order)))
    out.append("")

    out.append("## CPU during the measured run, %: proxy process / proxy core / load core / other\n")
    out.append("Proxy process = user+system time of the proxy's processes in % of one CPU. Proxy core and "
               "load core = busy time (incl. softirq; loopback receive work runs on the sender's core) of the "
               "CPU the proxy is pinned to and of the CPU wrk and the origins are pinned to. If the load core is "
               "near 100% and the proxy core is not, wrk/origins limit the figure, not the proxy. Other = machine "
               "user+system time not used by the proxy, the origins, wrk or the script's helpers (e.g. someone "
               "else's build), in % of all CPUs; far above 0 means the figures are noisy.\n")
    out.append("| case | " + " | ".join(cols) + " |")
    out.append("|" + "---|" * (len(cols) + 1))
    for case, label in CASES[:6]:
        cells = []
        for p in order:
            v = [get(p, case, k) for k in ("proxy_cpu_pct", "proxy_core_pct", "load_core_pct", "other_cpu_pct")]
            cells.append("–" if None in v else "%.0f / %.0f / %.0f / %.0f" % tuple(v))
        out.append("| %s | %s |" % (label, " | ".join(cells)))
    out.append("")

    # per-rep values of the headline numbers, to judge noise
    out.append("## Per-repetition values (in run order of the repetitions)\n")
    out.append("| case | metric | " + " | ".join(cols) + " |")
    out.append("|" + "---|" * (len(cols) + 2))
    for case, label, key, kind in [
        ("get_c64", "GET c64", "rps", "rps"), ("get_c256", "GET c256", "rps", "rps"),
        ("big_c16", "10 MiB c16", "mibps", "mib"), ("upload_c16", "POST 1 MiB c16", "rps", "rps"),
        ("close_c64", "conn close c64", "rps", "rps"), ("h2_c64x10", "h2c c64x10", "rps", "rps"),
        ("idle", "idle", "bytes_per_conn", "bytes"),
    ]:
        cells = []
        for p in order:
            xs = data.get(p, {}).get(case, {}).get(key, [])
            cells.append(" / ".join(fmt(x, kind) for x in xs) or "–")
        out.append("| %s | %s | %s |" % (label, key, " | ".join(cells)))
    out.append("")

    problems = []
    for p in proxies:
        for case, d in data.get(p, {}).items():
            se, nx = sum(d.get("sock_errors", [])), sum(d.get("non2xx", []))
            if se or nx:
                problems.append("- %s, %s: %d socket errors, %d non-2xx responses (all reps)"
                                % (NAMES[p], case, se, nx))
            if case == "idle" and sum(d.get("idle_failed", [])):
                problems.append("- %s, idle: %d connections failed to open (all reps)"
                                % (NAMES[p], sum(d["idle_failed"])))
    out.append("## Errors\n")
    out.append("\n".join(problems) if problems else "None (no socket errors, no non-2xx responses).")
    notes = os.path.join(raw, "notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            txt = f.read().strip()
        if txt:
            out.append("\n## Notes\n\n" + txt)
    print("\n".join(out).rstrip() + "\n")


if __name__ == "__main__":
    main()
