#!/usr/bin/env bash
# Regenerates the test PKI used by tests/transport (committed; valid for 100 years):
# a CA, a server certificate for localhost / 127.0.0.1, a client certificate (CN=client),
# and a second, untrusted CA with a server certificate (to test verification failures).
set -euo pipefail
cd "$(dirname "$0")"
days=36500
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days $days \
  -subj "/CN=amqp test CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr \
  -subj "/CN=localhost" 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem \
  -days $days -extfile server.ext 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout client.key -out client.csr \
  -subj "/CN=client" 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out client.pem \
  -days $days 2>/dev/null
openssl req -x509 -newkey rsa:2048 -nodes -keyout other-ca.key -out other-ca.pem -days $days \
  -subj "/CN=untrusted CA" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout other-server.key -out other-server.csr \
  -subj "/CN=localhost" 2>/dev/null
openssl x509 -req -in other-server.csr -CA other-ca.pem -CAkey other-ca.key -CAcreateserial \
  -out other-server.pem -days $days -extfile server.ext 2>/dev/null
rm -f ./*.csr ./*.srl server.ext ca.key other-ca.key
