"""The command line of `amqp-cli send/receive`, shared by the Python peer clients
(proton_client.py, uamqp_client.py), which are run as scripts from this folder."""

import argparse


def client_parser(prog):
    """An ArgumentParser for `PROG send|receive URL ADDRESS [options]`; a client adds its own
    options to it."""
    p = argparse.ArgumentParser(prog=prog)
    p.add_argument('mode', choices=('send', 'receive'))
    p.add_argument('url')
    p.add_argument('address')
    p.add_argument('--count', type=int, default=1)
    p.add_argument('--presettled', action='store_true')
    p.add_argument('--size', type=int)
    p.add_argument('--body')
    p.add_argument('--property', action='append', default=[])
    p.add_argument('--ca')
    p.add_argument('--cert')
    p.add_argument('--key')
    p.add_argument('--insecure', action='store_true')
    p.add_argument('--sasl')
    p.add_argument('--idle-timeout', type=int)
    p.add_argument('--trace', action='store_true')
    p.add_argument('--timeout', type=float, default=30)
    p.add_argument('--outcome', choices=('accept', 'reject', 'release', 'modify'), default='accept')
    p.add_argument('--credit', type=int, default=100)
    p.add_argument('--print', action='store_true')
    p.add_argument('--expect-size', type=int)
    return p
