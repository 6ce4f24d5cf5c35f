"""The simulated mail world (DNS and SMTP on loopback) used by the demo and the tests.

A world is declared in `world` (domains, their records, their mail servers and mailboxes) and
served by `dns_server` (one loopback address, UDP and TCP) and `smtp_server` (every mail server
on one shared port, each at its own 127.0.0.x address); `running` starts and stops it all, on a
background thread (`run_world`, `serve_forever`) or on the caller's loop (`WorldServers`), and
`counters` holds what the servers saw. `smtp_replies` words every reply. `demo_world` is the
world and list of `mailsift demo`; `python -m engine.sandbox` serves it. Servers listen on
127.0.0.0/8 only; the private addresses some DNS answers carry (an MX at 10.0.0.1) are there for
the prober to refuse, never to be contacted.
"""
