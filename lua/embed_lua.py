#!/usr/bin/env python3
"""embed_lua.py IN.lua OUT.h: write IN.lua as a C string constant.

The recipes' Lua half ships inside the module (lua/recipes.c loads it),
so there is no .lua file to install or to find on package.path.
"""
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    lines = ["/* generated from %s by embed_lua.py: do not edit */"
             % src.rsplit("/", 1)[-1],
             "static const char tcl_recipes_lua[] ="]
    for line in data.splitlines(keepends=True):
        esc = "".join(
            c if 32 <= ord(c) < 127 and c not in '\\"?' else "\\%03o" % ord(c)
            for c in line.decode("latin-1"))
        lines.append('    "%s"' % esc)
    lines[-1] += ";"
    with open(out, "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
