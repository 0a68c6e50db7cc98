#!/usr/bin/env python3
"""Every key config.c accepts is documented where it belongs, and nothing else is.

Usage: config_docs.py CONFIG_C MAN5 CONFIG_MD EXAMPLE

The keys and their scopes are read from config.c's key_defs table.  Each [general]
key must have an entry in the [general] part of mboxmirror.ini(5) (a ".BI key"
paragraph) and a row in the `[general]` table of docs/config.md, each account key
the same in the account parts; both documents may describe no key that config.c
refuses.  The example config shows every key, set or commented out."""

import re
import sys


def keys_of(config_c):
    """{key: set of scopes} from the key_defs table."""
    with open(config_c, encoding="utf-8") as f:
        text = f.read()
    m = re.search(r"key_defs\[\]\s*=\s*\{(.*?)\n\};", text, re.S)
    if not m:
        sys.exit(f"{config_c}: no key_defs table found")
    keys = {}
    for line in m.group(1).strip().splitlines():
        e = re.fullmatch(r'\s*\{\s*"([a-z0-9_]+)",\s*([A-Z_| ]+)\},', line)
        if not e:
            sys.exit(f"{config_c}: cannot read key_defs entry {line.strip()!r}")
        scopes = {s.strip() for s in e.group(2).split("|")}
        if not scopes <= {"IN_GENERAL", "IN_ACCOUNT"}:
            sys.exit(f"{config_c}: unknown scope in {line.strip()!r}")
        keys[e.group(1)] = {"general" if s == "IN_GENERAL" else "account" for s in scopes}
    return keys


def split(text, general_heading, account_heading, end_heading):
    """The [general] part and the account part of a document."""
    g = text.index(general_heading)
    a = text.index(account_heading, g)
    e = text.index(end_heading, a)
    return {"general": text[g:a], "account": text[a:e]}


def man_keys(part):
    return set(re.findall(r"^\.BI ([a-z0-9_]+) \" = ", part, re.M))


def md_keys(part):
    return set(re.findall(r"^\| `([a-z0-9_]+)` \|", part, re.M))


def main():
    config_c, man5, config_md, example = sys.argv[1:5]
    keys = keys_of(config_c)
    if len(keys) < 10:
        sys.exit(f"{config_c}: only {len(keys)} keys read from key_defs")
    with open(man5, encoding="utf-8") as f:
        man = split(f.read(), ".SH THE [general] SECTION", ".SH ACCOUNT SECTIONS",
                    ".SH EXAMPLES")
    with open(config_md, encoding="utf-8") as f:
        md = split(f.read(), "## `[general]`", "## Account sections", "## Example")
    with open(example, encoding="utf-8") as f:
        shown = set(re.findall(r"^;?([a-z0-9_]+) = ", f.read(), re.M))

    problems = []
    for doc, parts, find in (("mboxmirror.ini(5)", man, man_keys),
                             ("docs/config.md", md, md_keys)):
        for scope, part in parts.items():
            documented = find(part)
            wanted = {k for k, s in keys.items() if scope in s}
            for k in sorted(wanted - documented):
                problems.append(f"{doc}: [{scope}] key {k} is not documented")
            for k in sorted(documented - wanted):
                problems.append(f"{doc}: [{scope}] documents {k}, which config.c "
                                "does not accept there")
    for k in sorted(set(keys) - shown):
        problems.append(f"{example}: key {k} is not shown")
    for p in problems:
        print(p)
    if problems:
        sys.exit(1)
    print(f"{len(keys)} keys documented in both places and shown in the example")


if __name__ == "__main__":
    main()
