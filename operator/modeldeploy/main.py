"""``modeldeploy-operator``: ``kopf run`` for our handlers, scoped by the configuration.

The namespaces come from MODELDEPLOY_WATCH_NAMESPACES (empty: all), the same variable the
operator's own watches read, so Kopf's watches and ours can never disagree about where the
operator may look (and where the Helm chart's Roles grant it access). Any other argument is
passed to ``kopf run`` (``--liveness=...``, ``--log-format=json``, ``--verbose``).
"""

from __future__ import annotations

import sys

from modeldeploy.config import OperatorConfig


def kopf_args(config: OperatorConfig, extra: list[str]) -> list[str]:
    """The ``kopf`` command line (without the program name)."""
    scope = ([f"--namespace={n}" for n in config.watch_namespaces]
             if config.watch_namespaces else ["--all-namespaces"])
    return ["run", "--standalone", *scope, *extra, "-m", "modeldeploy.handlers"]


def main(argv: list[str] | None = None) -> None:
    from kopf.cli import main as kopf_main  # Kopf's CLI, only when run

    args = kopf_args(OperatorConfig.from_env(), list(sys.argv[1:] if argv is None else argv))
    kopf_main(args, prog_name="modeldeploy-operator")


if __name__ == "__main__":
    main()
