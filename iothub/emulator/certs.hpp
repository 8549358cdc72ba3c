// The emulator's TLS material, made with libcrypto at first run (no `openssl` command): a
// CA of its own and a server certificate it signs for the hub's names, so that clients
// trust the hub with one file (the CA) and nothing else changes.
#pragma once

#include <string>
#include <vector>

#include "amqp/result.hpp"

namespace amqp::iothub::emulator {

// Where the files are (all PEM).
struct certificate_files {
  std::string ca_cert;     // DIR/ca.pem: what clients trust
  std::string ca_key;      // DIR/ca.key (mode 0600): kept to sign a new server certificate
  std::string server_cert; // DIR/server.pem: the server certificate, then the CA
  std::string server_key;  // DIR/server.key (mode 0600)
};

// The file names in `dir`.
[[nodiscard]] certificate_files certificate_paths(const std::string& dir);

// What ensure_certificates did.
struct certificate_report {
  bool made_ca = false;     // a new CA (none was there)
  bool made_server = false; // a new server certificate (none, expired, or missing a name)
};

// Makes sure `dir` holds a CA and a server certificate signed by it that names every entry
// of `dns_names` (subjectAltName DNS) and `ip_addresses` (subjectAltName IP, "127.0.0.1",
// "::1") and is valid for at least a day more. What is there and fits is kept; otherwise the
// CA (ten years) and the server certificate (three years) are made: EC P-256 keys, SHA-256
// signatures, serial numbers of 16 random bytes, server extensions as the Web PKI expects
// (basicConstraints CA:FALSE, keyUsage digitalSignature, extendedKeyUsage serverAuth,
// subject and authority key identifiers). Errors: amqp::errc::invalid_argument (a name that is not
// a host name, an address that does not parse; the reason in `why`), std::errc::io_error (files
// that cannot be read or written, libcrypto failures; the reason in `why`).
[[nodiscard]] result<certificate_report>
ensure_certificates(const std::string& dir, const std::vector<std::string>& dns_names,
                    const std::vector<std::string>& ip_addresses, std::string& why);

} // namespace amqp::iothub::emulator
