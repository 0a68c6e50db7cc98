#!/usr/bin/env python3
"""Turn a bench/run.sh results directory into Markdown tables.

    report.py RESULTS_DIR [--readme PATH]

Reads runs.jsonl (one line per timed run), verify.jsonl (one line per verification),
daemon.jsonl (the daemon's footprint), scale.jsonl
(the daemon at scale), commands.txt (what a no-change resync sends),
corpora.tsv and machine.txt.  When a row/scenario was measured more than once in the same
directory, the latest series (from its last run 1 on) counts.  Prints the report; with
--readme, also writes it into PATH below the fixed description kept there.
"""
import argparse
import json
import os
import re
import statistics
import sys

MARK = "<!-- results: everything below is written by bench/report.py -->"
SCEN_NAMES = {"initial": "initial mirror", "nochange": "no-change resync", "incr": "resync after new mail"}
ROW_ORDER = ["raw", "mboxmirror", "mboxmirror-z", "mbsync", "mbsync16", "offlineimap", "getmail"]
ROW_NAMES = {"raw": "raw limit", "mboxmirror": "**mboxmirror**",
             "mboxmirror-z": "**mboxmirror**, COMPRESS", "mbsync": "mbsync",
             "mbsync16": "mbsync ×16 processes", "offlineimap": "offlineimap3", "getmail": "getmail6"}
PROFILE_NAMES = {"loopback": "loopback", "wan": "WAN profile"}
CORPUS_ORDER = ["mail", "mail5k", "big", "many"]


def load_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for ln in f:
                ln = ln.strip()
                if ln:
                    out.append(json.loads(ln))
    return out


def latest_series(runs):
    series = {}
    for r in runs:
        key = (r["profile"], r["corpus"], r["row"], r["scenario"])
        if str(r.get("run")) == "1" or key not in series:
            series[key] = []
        series[key].append(r)
    return series


def fmt(x, digits=2):
    if x is None:
        return "–"
    if x >= 100:
        return f"{x:,.0f}"
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.{digits}f}"


def ratio(x, ref):
    if x is None or not ref:
        return "–"
    return f"{x / ref:.2f}×"


def wan_limit(machine, nbytes):
    """The WAN link's floor for a corpus: its bytes at the link's rate."""
    m = re.search(r"wan profile: (\d+) ms round trip, ([\d.]+) Mbit/s", machine)
    if not m:
        return ""
    rtt, mbit = int(m.group(1)), float(m.group(2))
    secs = nbytes * 8 / (mbit * 1e6)
    return (f"Bandwidth limit: {nbytes / 1e6:,.1f} MB at {mbit:g} Mbit/s take {secs:.1f} s "
            f"(+ a few {rtt} ms round trips); faster than that is only possible compressed.\n")


def summarise(rs):
    ok = [r for r in rs if r["rc"] == 0]
    use = ok or rs
    med = lambda k: statistics.median(r[k] for r in use) if use and all(r.get(k) is not None for r in use) else None
    wall = [r["wall"] for r in use]
    return {"n": len(rs), "failed": len(rs) - len(ok), "wall": med("wall"), "wmin": min(wall),
            "wmax": max(wall), "cpu": med("cpu"), "rss": med("rss_kb") / 1024 if use else None,
            "server": med("server_cpu"), "msgs": int(rs[-1].get("messages") or 0),
            "bytes": int(rs[-1].get("bytes") or 0)}


def report(d):
    runs = load_jsonl(os.path.join(d, "runs.jsonl"))
    verifs = {}
    for v in load_jsonl(os.path.join(d, "verify.jsonl")):
        verifs[v["label"]] = v
    series = latest_series(runs)
    out = []
    machine = ""
    if os.path.exists(os.path.join(d, "machine.txt")):
        with open(os.path.join(d, "machine.txt")) as f:
            machine = f.read().strip()
    # One block per run.sh invocation into this directory: the first in full, the later
    # ones only where they differ from it (date, load, options, build).
    blocks, cur = [], []
    for ln in machine.splitlines():
        if ln.startswith("date:") and cur:
            blocks.append(cur)
            cur = []
        cur.append(ln)
    if cur:
        blocks.append(cur)
    if blocks:
        lines = list(blocks[0])
        for b in blocks[1:]:
            lines.append("")
            lines += [ln for ln in b if ln not in blocks[0]]
        out.append("```\n" + "\n".join(lines) + "\n```\n")
    corpora = {}
    if os.path.exists(os.path.join(d, "corpora.tsv")):
        with open(os.path.join(d, "corpora.tsv")) as f:
            for ln in f:
                c, m, b = ln.split()
                corpora[c] = (int(m), int(b))
    if corpora:
        out.append("| corpus | messages | MB (sum of RFC822.SIZE) |\n|---|---|---|")
        for c in sorted(corpora, key=lambda c: CORPUS_ORDER.index(c) if c in CORPUS_ORDER else 99):
            out.append(f"| {c} | {corpora[c][0]:,} | {corpora[c][1] / 1e6:,.1f} |")
        out.append("")
    keys = sorted({(k[0], k[1]) for k in series},
                  key=lambda k: (["loopback", "wan"].index(k[0]) if k[0] in ("loopback", "wan") else 9,
                                 CORPUS_ORDER.index(k[1]) if k[1] in CORPUS_ORDER else 99))
    problems = []
    for profile, corpus in keys:
        out.append(f"### {PROFILE_NAMES.get(profile, profile)}, corpus `{corpus}`\n")
        out.append("| scenario | row | wall s (median) | min–max | ×raw | ×mbsync | CPU s | ×raw | ×mbsync "
                   "| peak RSS MB | ×raw | ×mbsync | server CPU s | MB/s | msgs/s | runs | verified |")
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for scen in ("initial", "nochange", "incr"):
            rows = {k[2]: summarise(v) for k, v in series.items()
                    if k[0] == profile and k[1] == corpus and k[3] == scen}
            if not rows:
                continue
            raw, mbs = rows.get("raw"), rows.get("mbsync")
            for row in sorted(rows, key=lambda r: ROW_ORDER.index(r) if r in ROW_ORDER else 99):
                s = rows[row]
                ref = lambda key, base: base[key] if base else None
                label = f"{profile}/{corpus}/{row}/{scen}"
                vs = [(lb, v) for lb, v in sorted(verifs.items())
                      if lb == label or lb.startswith(label + "/")]
                bad = [(lb, v) for lb, v in vs if not v["ok"]]
                if not vs:
                    ver = "–"
                elif not bad:
                    ver = "OK" if len(vs) == 1 else f"OK ({len(vs)} of {len(vs)})"
                else:
                    ver = f"**FAILED** ({len(bad)} of {len(vs)})"
                    problems += bad
                mbps = s["bytes"] / 1e6 / s["wall"] if s["bytes"] and s["wall"] else None
                mps = s["msgs"] / s["wall"] if s["msgs"] and s["wall"] else None
                runs_txt = f"{s['n']}" + (f" ({s['failed']} failed)" if s["failed"] else "")
                scen_txt = SCEN_NAMES[scen] + (f" (+{s['msgs']:,})" if scen == "incr" and s["msgs"] else "")
                out.append(
                    f"| {scen_txt} | {ROW_NAMES.get(row, row)} | {fmt(s['wall'])} | {fmt(s['wmin'])}–{fmt(s['wmax'])} "
                    f"| {ratio(s['wall'], ref('wall', raw))} | {ratio(s['wall'], ref('wall', mbs))} "
                    f"| {fmt(s['cpu'])} | {ratio(s['cpu'], ref('cpu', raw))} | {ratio(s['cpu'], ref('cpu', mbs))} "
                    f"| {fmt(s['rss'], 1)} | {ratio(s['rss'], ref('rss', raw))} | {ratio(s['rss'], ref('rss', mbs))} "
                    f"| {fmt(s['server'])} | {fmt(mbps, 1)} | {fmt(mps, 0)} | {runs_txt} | {ver} |")
        if profile == "wan" and corpora.get(corpus):
            out.append(wan_limit(machine, corpora[corpus][1]))
        out.append("")
    commands = {}
    if os.path.exists(os.path.join(d, "commands.txt")):
        label = None
        with open(os.path.join(d, "commands.txt")) as f:
            for ln in f:
                if ln.startswith("# "):
                    label = ln[2:].strip()
                    commands[label] = []
                elif label:
                    commands[label].append(ln.rstrip("\n"))
    if commands:
        out.append("### What mboxmirror sends on a no-change resync\n")
        out.append("```")
        for label, lines in commands.items():
            out.append(f"# {label}")
            out += lines
        out.append("```\n")
    daemon = load_jsonl(os.path.join(d, "daemon.jsonl"))
    if daemon:
        out.append("### The daemon with many accounts (loopback, users of corpus `many`)\n")
        out.append("| accounts | first round s | then idle s | CPU while idle s | CPU % | RSS MiB "
                   "| peak RSS MiB | SIGTERM to exit s |")
        out.append("|---|---|---|---|---|---|---|---|")
        for r in daemon:
            out.append(f"| {r['accounts']:,} | {fmt(r['first_round_s'])} | {fmt(r['idle_s'])} "
                       f"| {r['idle_cpu_s']:.3f} | {r['idle_cpu_pct']:.3f} | {r['rss_kb'] / 1024:.1f} "
                       f"| {r['hwm_kb'] / 1024:.1f} | {fmt(r['stop_s'])} |")
        out.append("")
    scale = load_jsonl(os.path.join(d, "scale.jsonl"))
    if scale:
        out += scale_table(scale)
    if problems:
        out.append("### Verification failures\n")
        for label, v in problems:
            out.append(f"- `{label}`: {v['summary']}")
            for p in v["problems"][:6]:
                out.append(f"    - {p}")
        out.append("")
    return "\n".join(out)


def within(value, target, below=False):
    """"met" or "**missed**" for a figure against its target (<=, or < with below)."""
    ok = value < target if below else value <= target
    return "met" if ok else "**missed**"


def scale_table(rows):
    """The daemon at scale: each figure beside its target."""
    out = ["### The daemon at scale (loopback, a Dovecot instance of its own)\n",
           "| accounts | figure | measured | target | |",
           "|---|---|---|---|---|"]
    for r in rows:
        push = r.get("push_accounts", 0)
        who = f"{r['accounts']:,}" + (f", {push:,} on push" if push else ", polling")
        figs = [("start: config loaded, running", f"{r['ready_s']:.2f} s", None, None),
                ("RSS once started", f"{r['rss_ready_kb'] / 1024:.1f} MiB", None, None),
                ("first round (every account synced once)", f"{r['first_round_s']:.0f} s",
                 None, None)]
        if push:
            figs.append(("every push connection up", f"{r.get('push_up_s', 0):.0f} s",
                         None, None))
        rss_target = 48 if push else 64
        figs += [
            (f"RSS after the first round, idle", f"{r['rss_kb'] / 1024:.1f} MiB "
             f"(peak {r['hwm_kb'] / 1024:.1f})", f"≤ {rss_target} MiB",
             within(r["rss_kb"] / 1024, rss_target)),
            (f"CPU while idle {r['idle_s']:.0f} s", f"{r['idle_cpu_s']:.2f} s = "
             f"{r['idle_cpu_pct']:.3f} %", "< 0.2 %" if push else "",
             within(r["idle_cpu_pct"], 0.2, below=True) if push else ""),
            ("open descriptors", f"{r['fds']:,}", None, None)]
        if "push_latency_s" in r:
            figs.append((f"push latency, {len(r['push_latency_s'])} accounts at random",
                         f"median {r['push_latency_median_s']:.2f} s, max "
                         f"{r['push_latency_max_s']:.2f} s", "≤ 2 s",
                         within(r["push_latency_max_s"], 2)))
        if "check_config_s" in r:
            figs.append(("`--check-config`", f"{r['check_config_s']:.2f} s", "< 1 s",
                         within(r["check_config_s"], 1, below=True)))
            figs.append(("config load (start to running)", f"{r['ready_s']:.2f} s",
                         "< 1 s", within(r["ready_s"], 1, below=True)))
        figs.append(("SIGTERM to exit", f"{r['stop_s']:.2f} s", None, None))
        for name, value, target, verdict in figs:
            out.append(f"| {who} | {name} | {value} | {target or ''} | {verdict or ''} |")
    out.append("")
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results")
    ap.add_argument("--readme")
    a = ap.parse_args()
    text = report(a.results)
    print(text)
    if a.readme:
        head = ""
        if os.path.exists(a.readme):
            with open(a.readme) as f:
                head = f.read().split(MARK)[0]
        if not head:
            head = "# Benchmark\n\n"
        with open(a.readme, "w") as f:
            f.write(head.rstrip("\n") + "\n\n" + MARK + "\n\n## Results\n\n" + text + "\n")
        print(f"written to {a.readme}", file=sys.stderr)


if __name__ == "__main__":
    main()
