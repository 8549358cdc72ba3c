#!/usr/bin/python3
"""bench_emulator's RabbitMQ: a private node (conformance/peers/peers.py: own epmd, ports and
mnesia dir on 127.0.0.1, AMQP 1.0 plugin, PLAIN guest/guest, TLS with a throw-away CA), with
the durable classic queues named on the command line declared (AMQP 1.0 address
/amq/queue/NAME).

Prints `url amqps://guest:guest@127.0.0.1:PORT ca CA_FILE pid NODE_PID` once the queues exist, then waits for SIGTERM
or SIGINT and stops the node and epmd by their PIDs (killed, they die with this process:
peers.py gives them PR_SET_PDEATHSIG). Prints `skip REASON` and exits 0 when RabbitMQ is not
installed.

    rabbitmq_node.py QUEUE...
"""

import os
import signal
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'conformance', 'peers'))

import peers  # noqa: E402


def main():
    queues = sys.argv[1:] or ['bench']
    if not os.path.exists(os.path.join(peers.RABBITMQ_BIN, 'rabbitmq-server')):
        print('skip RabbitMQ is not installed (%s/rabbitmq-server)' % peers.RABBITMQ_BIN,
              flush=True)
        return 0
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with peers.Workspace(prefix='bench-rabbitmq-') as ws:
        rabbit = peers.RabbitMQ(ws, external=False).start()
        for q in queues:
            rabbit.declare_durable_queue(q)
        print('url amqps://guest:guest@127.0.0.1:%d ca %s pid %d'
              % (rabbit.tls_port, rabbit.certs.ca, rabbit.node.pid), flush=True)
        stop.wait()
    return 0


if __name__ == '__main__':
    sys.exit(main())
