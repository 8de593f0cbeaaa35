#!/usr/bin/env python3
"""The folders' include graph follows the layout (README, "Layout").

Reads every #include "folder/..." line of the library sources under the
repository root given as the first argument and checks two things:

  1. every include runs down the order
         common <- io <- worker <- eval <- coordinator <- cli
     with mpi beside them (common <- mpi <- eval): a folder includes only
     itself and the folders it is allowed to use (ALLOWED below);
  2. neither the graph between the folders (a subfolder such as
     coordinator/clr counts as its folder: one library) nor the graph
     between the files has a cycle (a header that includes itself round
     a loop, or a .c file pair that only compiles in one order).

Prints each violation as file:line and exits 1 on any, 0 otherwise. The build
enforces the same order (CMakeLists.txt: one library per folder); this
check also names the offending line and catches a cycle inside a library.
"""
import os
import re
import sys

ALLOWED = {
    "common": set(),
    "io": {"common"},
    "worker": {"common", "io"},
    "mpi": {"common"},
    "eval": {"common", "io", "worker", "mpi"},
    "coordinator": {"common", "io", "worker", "mpi", "eval"},
    "cli": {"common", "io", "worker", "mpi", "eval", "coordinator"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def top(folder):
    return folder.split("/")[0]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "."
    bad = []
    edges = {}  # folder -> {folder: first "file:line" that includes it}
    file_edges = {}  # file -> {included file: "file:line"}
    for lib in ALLOWED:
        for dirpath, _, names in os.walk(os.path.join(root, lib)):
            for name in sorted(names):
                if not name.endswith((".c", ".h")):
                    continue
                path = os.path.join(dirpath, name)
                rel = os.path.relpath(path, root)
                src = os.path.dirname(rel)
                with open(path, encoding="utf-8") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        inc = m.group(1)
                        dst = os.path.dirname(inc)
                        if inc.startswith(".") or not dst:
                            if not os.path.exists(os.path.join(root, src, inc)):
                                continue
                            dst = os.path.normpath(os.path.join(src, os.path.dirname(inc)))
                        if top(dst) not in ALLOWED:
                            continue  # not a sotu folder (a system header in quotes)
                        where = f"{rel}:{n}"
                        if top(dst) != top(src) and top(dst) not in ALLOWED[top(src)]:
                            bad.append(f"{where}: {top(src)}/ may not include {inc} "
                                       f"({top(src)}/ uses only: "
                                       f"{', '.join(sorted(ALLOWED[top(src)])) or 'nothing'})")
                        if top(dst) != top(src):
                            edges.setdefault(top(src), {}).setdefault(top(dst), where)
                        target = os.path.normpath(os.path.join(dst, os.path.basename(inc)))
                        file_edges.setdefault(rel, {}).setdefault(target, where)

    # Cycles: depth-first search, reporting each back edge.
    def find_cycles(graph):
        state = {}
        for node in sorted(graph):
            if not state.get(node):
                visit(graph, state, node, [])

    def visit(edges, state, node, stack):
        state[node] = 1
        stack.append(node)
        for nxt, where in sorted(edges.get(node, {}).items()):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                bad.append(f"{where}: include cycle {' -> '.join(cycle)}")
            elif not state.get(nxt):
                visit(edges, state, nxt, stack)
        stack.pop()
        state[node] = 2

    find_cycles(edges)
    find_cycles(file_edges)

    for b in bad:
        print(b)
    n_edges = sum(len(v) for v in edges.values())
    n_files = sum(len(v) for v in file_edges.values())
    print(f"{len(edges)} folders that include others, {n_edges} folder-to-folder and {n_files} file-to-file "
          f"include edges, {len(bad)} violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
