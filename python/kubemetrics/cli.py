"""`kubemetrics serve | worker | simulate | demo`."""

from __future__ import annotations

import argparse
import contextlib
import resource
import sys

from kubemetrics import __version__
from kubemetrics import options as opts


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kubemetrics", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    # pflag, which metrics-server's flags go through, knows no abbreviations: `--kubelet-insecure` is an
    # unknown flag there, and must not silently mean --kubelet-insecure-tls here.
    serve = commands.add_parser(
        "serve",
        allow_abbrev=False,
        usage="%(prog)s [flags]",
        help="Run the front process (store + metrics.k8s.io API) and its workers.",
    )
    opts.add_serve_flags(serve)

    worker = commands.add_parser(
        "worker",
        allow_abbrev=False,
        usage="%(prog)s [flags]",
        help="Run one scraping worker (started by `serve`, or remotely).",
    )
    opts.add_worker_flags(worker)

    from kubemetrics.simulator import cli as simulator_cli

    simulate = commands.add_parser("simulate", help="Run a fleet of simulated kubelets on loopback addresses.")
    simulator_cli.add_flags(simulate)

    from kubemetrics import demo

    demo_parser = commands.add_parser("demo", help="Simulated cluster + kubemetrics; prints a kubeconfig for kubectl.")
    demo.add_flags(demo_parser)
    return parser


def raise_open_file_limit() -> None:
    """Soft open-file limit up to the hard one, as Go programs (metrics-server among them) do at start: a
    worker holds a kubelet connection per node it scrapes, and 1024 is a common soft default."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    raise_open_file_limit()
    try:
        if args.command == "serve":
            if args.version:
                # metrics-server prints its git version ("v0.9.0") and exits before validating anything.
                print(f"v{__version__}")
                return 0
            serve_options = opts.serve_options_from(args)
            serve_options.validate()
            from kubemetrics import front

            return front.run(serve_options)
        if args.command == "worker":
            worker_options = opts.worker_options_from(args)
            worker_options.kubelet.validate()
            from kubemetrics import worker

            return worker.run(worker_options)
        if args.command == "simulate":
            from kubemetrics.simulator import cli as simulator_cli

            return simulator_cli.run(args)
        from kubemetrics import demo

        return demo.run(args)
    except opts.OptionsError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 2
