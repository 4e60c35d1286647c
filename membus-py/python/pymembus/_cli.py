"""The `pymembus` command: `help`, `files`, `info [name|version|...]`.

The same commands as pymembus's helper script, answered from this package's metadata.
Inspecting shares is the job of the `membus` command-line tool.
"""

import sys
from importlib import metadata

DIST = "membus-py"
USAGE = """usage: pymembus <command> [args]

commands:
  help           where the documentation is, and how to inspect shares
  files          the files this package installed
  info [var]     package information: name version description build company author
                 email url license root lib include bin sbin share (or all)
"""


def _dist():
    try:
        return metadata.distribution(DIST)
    except metadata.PackageNotFoundError:
        return None


def _info():
    import os

    from . import pymembus as ext

    d = _dist()
    meta = d.metadata if d is not None else {}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    bindir = os.path.dirname(sys.executable)
    urls = meta.get_all("Project-URL") if d is not None else None
    return {
        "name": "pymembus",
        "version": ext.__version__,
        "description": (meta.get("Summary") if d is not None else None) or "",
        "build": ext.__build__,
        "company": "membus",
        "author": (meta.get("Author") if d is not None else None) or "membus",
        "email": (meta.get("Author-email") if d is not None else None) or "",
        "url": (urls[0].split(",", 1)[-1].strip() if urls else ""),
        "license": (meta.get("License") if d is not None else None) or "MIT OR Apache-2.0",
        "root": root,
        "lib": os.path.dirname(os.path.abspath(__file__)),
        "include": "",
        "bin": bindir,
        "sbin": bindir,
        "share": "",
    }


def main(argv=None):
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stdout.write(USAGE)
        return 0
    cmd, rest = args[0], args[1:]
    if cmd == "help":
        print("pymembus (membus) is pymembus 2.2's Python API on the membus Rust core.")
        print("API: https://pypi.org/project/pymembus/ (pymembus 2.2 documentation applies)")
        print("To inspect shares (list, info, tail, kv, send, rm, bench), use the membus CLI:")
        print("  cargo install --path membus-cli   # from the membus repository")
        print("  membus --help")
        return 0
    if cmd == "files":
        d = _dist()
        if d is not None and d.files:
            for f in d.files:
                print(f.locate())
        return 0
    if cmd == "info":
        info = _info()
        var = rest[0] if rest else "all"
        if var == "all":
            for k, v in info.items():
                print(f"{k} {v}")
            return 0
        if var in info:
            print(info[var])
            return 0
        print(f"unknown info variable: {var}", file=sys.stderr)
        return 1
    print("Invalid command", file=sys.stderr)
    sys.stderr.write(USAGE)
    return 1


if __name__ == "__main__":
    sys.exit(main())
