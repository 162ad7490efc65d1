#!/usr/bin/env python3
"""Checks that every relative link in README.md and docs/**/*.md points to an existing file,
and that #anchors into markdown files match a heading (GitHub's slug rules)."""
import re, sys, glob, os, unicodedata

def slug(h):
    h = h.strip().lower()
    h = re.sub(r"[^\w\- ]", "", h)  # GitHub keeps letters, digits, _, -, spaces
    return h.replace(" ", "-")

def anchors(path):
    text = re.sub(r"```.*?```", "", open(path, encoding="utf-8").read(), flags=re.S)
    out, seen = set(), {}
    for m in re.finditer(r"^#{1,6}\s+(.*)$", text, re.M):
        s = slug(re.sub(r"[`*]", "", m.group(1)))
        n = seen.get(s, 0); seen[s] = n + 1
        out.add(s if n == 0 else f"{s}-{n}")
    return out

files = ["README.md"] + sorted(glob.glob("docs/**/*.md", recursive=True))
bad = 0; count = 0
for f in files:
    text = re.sub(r"```.*?```", "", open(f, encoding="utf-8").read(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    for m in re.finditer(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", text):
        url = m.group(1)
        if re.match(r"^[a-z]+:", url): continue
        count += 1
        path, _, frag = url.partition("#")
        target = os.path.normpath(os.path.join(os.path.dirname(f), path)) if path else f
        if not os.path.exists(target):
            print(f"{f}: {url}: no such file {target}"); bad += 1; continue
        if frag and target.endswith(".md") and frag not in anchors(target):
            print(f"{f}: {url}: no heading #{frag} in {target}"); bad += 1
print(f"{count} relative links in {len(files)} files, {bad} broken")
sys.exit(1 if bad else 0)
