"""``python -m devstack {build,up,down,status,crd}``: the local test stack from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from devstack import build, procs, stack


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build/fetch every binary into the cache")
    b.add_argument("components", nargs="*")
    sub.add_parser("up", help="start the stack (builds first if needed)")
    sub.add_parser("down", help="stop the processes the stack started")
    sub.add_parser("status", help="print the stack's endpoints and process health")
    sub.add_parser("crd", help="install the ModelDeployment CRD into the running stack")
    args = parser.parse_args()

    if args.command == "build":
        build.build_all(args.components or None)
    elif args.command == "up":
        try:
            info = stack.up()
        except procs.StackError as exc:
            print(f"[stack] FAILED: {exc}", file=sys.stderr)
            return 1
        print(json.dumps(asdict(info), indent=2))
        print(f"\nUse it from a shell:  source {info.state}/stack.env")
    elif args.command == "down":
        stack.down()
    elif args.command == "status":
        loaded = stack.load()
        if loaded is None:
            print("stack is not running")
            return 1
        print(json.dumps(asdict(loaded), indent=2))
        dead = stack.healthy(loaded)
        print("all processes running" if not dead else f"NOT running: {', '.join(dead)}")
        return 1 if dead else 0
    elif args.command == "crd":
        return _install_crd()
    return 0


def _install_crd() -> int:
    loaded = stack.load()
    if loaded is None:
        print("stack is not running (make cluster-up)", file=sys.stderr)
        return 1
    try:
        stack.install_crd(loaded)
    except procs.StackError as exc:
        print(f"[stack] CRD not installed: {exc}", file=sys.stderr)
        return 1
    print(f"[stack] CRD installed and Established: {stack.CRD}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
