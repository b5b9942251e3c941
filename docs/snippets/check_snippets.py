#!/usr/bin/env python3
"""Checks that every snippet shown in docs/operators.md is byte-identical to its source file's region.

In the markdown, each code block shown from a file is preceded by a line
    <!-- snippet: <file name in docs/snippets> -->
and the fenced block (```cpp or ```python) right after it must hold exactly the lines between the
file's `// snippet-begin` and `// snippet-end` (C++) or `# snippet-begin` and `# snippet-end`
(Python) markers. Also fails when a snippet file has no markers, or when a snippet file (.cpp / .py)
is shown nowhere. Exit 0 when all agree, 1 (with a message per problem) otherwise.

usage: check_snippets.py [docs/operators.md] [docs/snippets]
"""

import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MARKER = re.compile(r"^<!-- snippet: ([A-Za-z0-9_.-]+) -->$")


def region(path):
    """The lines between the begin and end markers of `path` (bytes, newlines kept), or None."""
    prefix = b"//" if path.endswith(".cpp") else b"#"
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    begin = [i for i, l in enumerate(lines) if l.strip() == prefix + b" snippet-begin"]
    end = [i for i, l in enumerate(lines) if l.strip() == prefix + b" snippet-end"]
    if len(begin) != 1 or len(end) != 1 or end[0] <= begin[0]:
        return None
    return b"".join(lines[begin[0] + 1:end[0]])


def shown(markdown):
    """{file name: [code block bytes, ...]} for every marked block of the markdown."""
    with open(markdown, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    blocks, problems = {}, []
    i = 0
    while i < len(lines):
        m = MARKER.match(lines[i].decode("utf-8").rstrip("\r\n"))
        if not m:
            i += 1
            continue
        name = m.group(1)
        j = i + 1
        if j >= len(lines) or not lines[j].startswith(b"```"):
            problems.append(f"{markdown}:{i + 1}: the snippet marker for {name} is not followed by a code fence")
            i += 1
            continue
        k = j + 1
        while k < len(lines) and lines[k].rstrip(b"\r\n") != b"```":
            k += 1
        if k >= len(lines):
            problems.append(f"{markdown}:{j + 1}: the code block of {name} is not closed")
            break
        blocks.setdefault(name, []).append((i + 1, b"".join(lines[j + 1:k])))
        i = k + 1
    return blocks, problems


def main(argv):
    markdown = argv[1] if len(argv) > 1 else os.path.join(HERE, "..", "operators.md")
    snippets = argv[2] if len(argv) > 2 else HERE
    blocks, problems = shown(markdown)
    files = sorted(f for f in os.listdir(snippets) if f.endswith((".cpp", ".py")) and f not in (os.path.basename(__file__), "run_snippets.cpp"))
    for name in files:
        want = region(os.path.join(snippets, name))
        if want is None:
            problems.append(f"{name}: no single snippet-begin / snippet-end marker pair")
            continue
        if name not in blocks:
            problems.append(f"{name}: not shown in {markdown} (no '<!-- snippet: {name} -->' block)")
            continue
        for line, got in blocks[name]:
            if got != want:
                problems.append(f"{markdown}:{line}: the block of {name} differs from the file's snippet region")
    for name in sorted(set(blocks) - set(files)):
        problems.append(f"{markdown}: shows {name}, which is not a file in {snippets}")
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"check_snippets: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_snippets: {sum(len(v) for v in blocks.values())} snippet blocks match their files")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
