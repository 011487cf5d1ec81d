"""``python -m devstack {build,up,down,status}``: the local test stack from the command line."""

from __future__ import annotations

import argparse
import json
import sys

from devstack import build, procs, stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build/fetch every binary into the cache")
    b.add_argument("components", nargs="*")
    sub.add_parser("up", help="start the stack (builds first if needed)")
    sub.add_parser("down", help="stop the processes the stack started")
    sub.add_parser("status", help="print the stack's endpoints and process health")
    args = parser.parse_args()

    if args.command == "build":
        build.build_all(args.components or None)
    elif args.command == "up":
        try:
            info = stack.up()
        except procs.StackError as exc:
            print(f"[stack] FAILED: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(info.__dict__, indent=2))
        print(f"\nUse it from a shell:  source {info.state}/stack.env")
    elif args.command == "down":
        stack.down()
    elif args.command == "status":
        loaded = stack.load()
        if loaded is None:
            print("stack is not running")
            return 1
        print(json.dumps(loaded.__dict__, indent=2))
        dead = stack.healthy(loaded)
        print("all processes running" if not dead else f"NOT running: {', '.join(dead)}")
        return 1 if dead else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
