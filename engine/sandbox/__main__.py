"""`python -m engine.sandbox`: serve the demo world until Ctrl-C or SIGTERM.

For running the world in its own process (a benchmark that must not share the GIL with it, a
Dagster UI session); `mailsift sandbox` is the same for users.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from engine.sandbox.demo_world import DEMO_SEED, demo_world
from engine.sandbox.running import serve_forever


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m engine.sandbox", description=__doc__)
    parser.add_argument("--dns-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--smtp-port", type=int, default=0, help="default: a free port")
    parser.add_argument("--seed", type=int, default=DEMO_SEED)
    parser.add_argument("--hostile", action="store_true", help="add the issue-6 servers")
    parser.add_argument("--fast", action="store_true", help="no injected latency")
    args = parser.parse_args(argv)
    latency = {"server_latency_s": (0.0, 0.0), "dns_latency_s": 0.0} if args.fast else {}
    world = demo_world(args.seed, hostile=args.hostile, **latency)  # type: ignore[arg-type]
    serve_forever(world, dns_port=args.dns_port, smtp_port=args.smtp_port)


if __name__ == "__main__":
    main()
