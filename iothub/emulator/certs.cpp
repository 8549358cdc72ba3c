// The emulator's CA and server certificate, made with libcrypto (OpenSSL 3).
#include "emulator/certs.hpp"

#include <cstdio>
#include <ctime>
#include <memory>
#include <system_error>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "amqp/error.hpp"

namespace amqp::iothub::emulator {
namespace {

struct evp_pkey_free_t {
  void operator()(EVP_PKEY* p) const noexcept { EVP_PKEY_free(p); }
};
struct x509_free_t {
  void operator()(X509* p) const noexcept { X509_free(p); }
};
struct file_close_t {
  void operator()(std::FILE* f) const noexcept { std::fclose(f); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, evp_pkey_free_t>;
using x509_ptr = std::unique_ptr<X509, x509_free_t>;
using file_ptr = std::unique_ptr<std::FILE, file_close_t>;

constexpr long day_seconds = 24L * 3600;

std::error_code io_error() {
  return std::make_error_code(std::errc::io_error);
}

// The last libcrypto error, readable.
std::string crypto_error(const std::string& what) {
  const unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) {
    return what;
  }
  char buf[256];
  ERR_error_string_n(e, buf, sizeof buf);
  return what + ": " + buf;
}

pkey_ptr read_key(const std::string& path) {
  file_ptr f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    return nullptr;
  }
  return pkey_ptr(PEM_read_PrivateKey(f.get(), nullptr, nullptr, nullptr));
}

x509_ptr read_cert(const std::string& path) {
  file_ptr f(std::fopen(path.c_str(), "rb"));
  if (!f) {
    return nullptr;
  }
  return x509_ptr(PEM_read_X509(f.get(), nullptr, nullptr, nullptr));
}

// Writes a file through a temporary name (a crash leaves the old file or the new one), with
// `mode`.
bool write_pem(const std::string& path, mode_t mode, const std::vector<X509*>& certs, EVP_PKEY* key,
               std::string& why) {
  const std::string tmp = path + ".tmp";
  file_ptr f(std::fopen(tmp.c_str(), "wb"));
  if (!f) {
    why = "cannot write " + tmp;
    return false;
  }
  if (::chmod(tmp.c_str(), mode) != 0) {
    why = "cannot set the mode of " + tmp;
    return false;
  }
  bool ok = true;
  for (X509* c : certs) {
    ok = ok && PEM_write_X509(f.get(), c) == 1;
  }
  if (key != nullptr) {
    ok = ok && PEM_write_PrivateKey(f.get(), key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  }
  ok = ok && std::fflush(f.get()) == 0;
  f.reset();
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    why = crypto_error("cannot write " + path);
    std::remove(tmp.c_str());
    return false;
  }
  return true;
}

pkey_ptr new_key() {
  return pkey_ptr(EVP_EC_gen("P-256"));
}

// Adds one X.509v3 extension given in OpenSSL's configuration syntax.
bool add_ext(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) {
    return false;
  }
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

// An unsigned certificate for `key` with subject CN=`cn`, valid from an hour ago for `days`,
// issued by `issuer` (itself when null).
x509_ptr new_cert(EVP_PKEY* key, const std::string& cn, long days, X509* issuer) {
  x509_ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return nullptr;
  }
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof serial) != 1) {
    return nullptr;
  }
  serial[0] &= 0x7F; // a positive INTEGER (RFC 5280 §4.1.2.2)
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  const bool serial_ok =
      bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get())) != nullptr;
  BN_free(bn);
  if (!serial_ok) {
    return nullptr;
  }
  if (X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert.get()), days * day_seconds) == nullptr ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return nullptr;
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("iothub-emulator"), -1, -1,
                                 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return nullptr;
  }
  X509* signer = issuer != nullptr ? issuer : cert.get();
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(signer)) != 1) {
    return nullptr;
  }
  return cert;
}

bool sign(X509* cert, EVP_PKEY* key) {
  return X509_sign(cert, key, EVP_sha256()) > 0;
}

// True if `cert` is valid for at least a day more, was signed by `ca`, and names every DNS
// name and address.
bool server_cert_fits(X509* cert, X509* ca, EVP_PKEY* ca_key,
                      const std::vector<std::string>& dns_names,
                      const std::vector<std::string>& ips) {
  if (X509_verify(cert, ca_key) != 1 ||
      X509_NAME_cmp(X509_get_issuer_name(cert), X509_get_subject_name(ca)) != 0) {
    ERR_clear_error();
    return false;
  }
  std::time_t soon = std::time(nullptr) + day_seconds;
  if (X509_cmp_time(X509_get0_notAfter(cert), &soon) <= 0) {
    return false;
  }
  for (const auto& n : dns_names) {
    if (X509_check_host(cert, n.c_str(), n.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) != 1) {
      return false;
    }
  }
  for (const auto& ip : ips) {
    if (X509_check_ip_asc(cert, ip.c_str(), 0) != 1) {
      return false;
    }
  }
  return true;
}

bool valid_dns_name(const std::string& n) {
  if (n.empty() || n.size() > 253) {
    return false;
  }
  for (const char ch : n) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.';
    if (!ok) {
      return false;
    }
  }
  return true;
}

bool valid_ip(const std::string& ip) {
  ASN1_OCTET_STRING* a = a2i_IPADDRESS(ip.c_str());
  if (a == nullptr) {
    ERR_clear_error();
    return false;
  }
  ASN1_OCTET_STRING_free(a);
  return true;
}

} // namespace

certificate_files certificate_paths(const std::string& dir) {
  return {dir + "/ca.pem", dir + "/ca.key", dir + "/server.pem", dir + "/server.key"};
}

result<certificate_report> ensure_certificates(const std::string& dir,
                                               const std::vector<std::string>& dns_names,
                                               const std::vector<std::string>& ip_addresses,
                                               std::string& why) {
  for (const auto& n : dns_names) {
    if (!valid_dns_name(n)) {
      why = "not a host name: " + n;
      return errc::invalid_argument;
    }
  }
  for (const auto& ip : ip_addresses) {
    if (!valid_ip(ip)) {
      why = "not an IP address: " + ip;
      return errc::invalid_argument;
    }
  }
  const auto files = certificate_paths(dir);
  certificate_report report;

  // The CA: kept if both halves are there and it is valid for a year more.
  pkey_ptr ca_key = read_key(files.ca_key);
  x509_ptr ca = read_cert(files.ca_cert);
  ERR_clear_error();
  const std::time_t in_a_year = std::time(nullptr) + 365 * day_seconds;
  if (!ca_key || !ca || X509_check_private_key(ca.get(), ca_key.get()) != 1 ||
      X509_cmp_time(X509_get0_notAfter(ca.get()), const_cast<std::time_t*>(&in_a_year)) <= 0) {
    ERR_clear_error();
    ca_key = new_key();
    if (!ca_key) {
      why = crypto_error("cannot make an EC P-256 key");
      return io_error();
    }
    ca = new_cert(ca_key.get(), "iothub-emulator CA", 3650, nullptr);
    if (!ca || !add_ext(ca.get(), ca.get(), NID_basic_constraints, "critical,CA:TRUE") ||
        !add_ext(ca.get(), ca.get(), NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !add_ext(ca.get(), ca.get(), NID_subject_key_identifier, "hash") ||
        !sign(ca.get(), ca_key.get())) {
      why = crypto_error("cannot make the CA certificate");
      return io_error();
    }
    if (!write_pem(files.ca_key, 0600, {}, ca_key.get(), why) ||
        !write_pem(files.ca_cert, 0644, {ca.get()}, nullptr, why)) {
      return io_error();
    }
    report.made_ca = true;
  }

  // The server certificate: kept if it fits the names and the CA.
  pkey_ptr key = read_key(files.server_key);
  x509_ptr cert = read_cert(files.server_cert);
  ERR_clear_error();
  if (!report.made_ca && key && cert && X509_check_private_key(cert.get(), key.get()) == 1 &&
      server_cert_fits(cert.get(), ca.get(), ca_key.get(), dns_names, ip_addresses)) {
    return report;
  }
  ERR_clear_error();
  key = new_key();
  if (!key) {
    why = crypto_error("cannot make an EC P-256 key");
    return io_error();
  }
  std::string san;
  for (const auto& n : dns_names) {
    san += (san.empty() ? "DNS:" : ",DNS:") + n;
  }
  for (const auto& ip : ip_addresses) {
    san += (san.empty() ? "IP:" : ",IP:") + ip;
  }
  const std::string cn = dns_names.empty() ? "iothub-emulator" : dns_names.front();
  // At most 398 days is what browsers take; TLS libraries under the SDKs take any, and the
  // emulator remakes the certificate when it is about to expire.
  cert = new_cert(key.get(), cn, 3L * 365, ca.get());
  if (!cert || !add_ext(cert.get(), ca.get(), NID_basic_constraints, "critical,CA:FALSE") ||
      !add_ext(cert.get(), ca.get(), NID_key_usage, "critical,digitalSignature") ||
      !add_ext(cert.get(), ca.get(), NID_ext_key_usage, "serverAuth") ||
      !add_ext(cert.get(), ca.get(), NID_subject_key_identifier, "hash") ||
      !add_ext(cert.get(), ca.get(), NID_authority_key_identifier, "keyid:always") ||
      (!san.empty() && !add_ext(cert.get(), ca.get(), NID_subject_alt_name, san)) ||
      !sign(cert.get(), ca_key.get())) {
    why = crypto_error("cannot make the server certificate");
    return io_error();
  }
  if (!write_pem(files.server_key, 0600, {}, key.get(), why) ||
      !write_pem(files.server_cert, 0644, {cert.get(), ca.get()}, nullptr, why)) {
    return io_error();
  }
  report.made_server = true;
  return report;
}

} // namespace amqp::iothub::emulator
