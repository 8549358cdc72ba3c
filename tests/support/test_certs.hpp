// X.509 material for tests, made in-process with libcrypto (no `openssl` command): a CA and
// the client (device) certificates it signs, written as PEM files into a temporary directory
// that is removed with it. EC P-256 keys, SHA-256 signatures; a certificate is valid from an
// hour ago for a day.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

namespace amqp::test {

// A directory of its own under the system's temp dir, removed (with what it holds) when this
// goes.
class cert_dir {
public:
  cert_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "test-certs-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) {
      throw std::runtime_error("cert_dir: mkdtemp failed");
    }
    path_ = tmpl;
  }
  ~cert_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  cert_dir(const cert_dir&) = delete;
  cert_dir& operator=(const cert_dir&) = delete;
  // The file `name` in this directory.
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }

private:
  std::string path_;
};

namespace detail {

struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct x509_free {
  void operator()(X509* c) const noexcept { X509_free(c); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_free>;
using x509_ptr = std::unique_ptr<X509, x509_free>;

inline void require(bool ok, const char* what) {
  if (!ok) {
    throw std::runtime_error(std::string("test_certs: ") + what + " failed");
  }
}

inline pkey_ptr new_key() {
  pkey_ptr k(EVP_EC_gen("P-256"));
  require(k != nullptr, "EVP_EC_gen");
  return k;
}

inline void add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  require(ext != nullptr, "X509V3_EXT_conf_nid");
  require(X509_add_ext(cert, ext, -1) == 1, "X509_add_ext");
  X509_EXTENSION_free(ext);
}

// A certificate for `key` with subject CN=`cn`, signed by `issuer_key` (issuer: `issuer`, or
// itself when null).
inline x509_ptr make_cert(const std::string& cn, EVP_PKEY* key, X509* issuer, EVP_PKEY* issuer_key,
                          bool ca) {
  x509_ptr c(X509_new());
  require(c != nullptr, "X509_new");
  require(X509_set_version(c.get(), 2) == 1, "X509_set_version");
  unsigned char serial[16];
  require(RAND_bytes(serial, sizeof serial) == 1, "RAND_bytes");
  serial[0] &= 0x7F; // positive
  BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
  require(bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(c.get())) != nullptr,
          "serial");
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(c.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(c.get()), 24L * 3600);
  X509_NAME* name = X509_get_subject_name(c.get());
  require(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                     reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                     0) == 1,
          "subject");
  require(X509_set_issuer_name(c.get(), issuer != nullptr ? X509_get_subject_name(issuer) : name) ==
              1,
          "issuer");
  require(X509_set_pubkey(c.get(), key) == 1, "X509_set_pubkey");
  X509* by = issuer != nullptr ? issuer : c.get();
  add_ext(c.get(), by, NID_subject_key_identifier, "hash");
  add_ext(c.get(), by, NID_authority_key_identifier, "keyid:always");
  if (ca) {
    add_ext(c.get(), by, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(c.get(), by, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(c.get(), by, NID_basic_constraints, "critical,CA:FALSE");
    add_ext(c.get(), by, NID_key_usage, "critical,digitalSignature");
    add_ext(c.get(), by, NID_ext_key_usage, "clientAuth");
  }
  require(X509_sign(c.get(), issuer_key, EVP_sha256()) > 0, "X509_sign");
  return c;
}

inline void write_cert(const std::string& path, X509* c) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  require(f != nullptr, "fopen");
  const bool ok = PEM_write_X509(f, c) == 1;
  std::fclose(f);
  require(ok, "PEM_write_X509");
}

inline void write_key(const std::string& path, EVP_PKEY* k) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  require(f != nullptr, "fopen");
  const bool ok = PEM_write_PrivateKey(f, k, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::fclose(f);
  require(ok, "PEM_write_PrivateKey");
}

} // namespace detail

// A certificate and its key, as files.
struct cert_files {
  std::string cert_file; // PEM certificate
  std::string key_file;  // PEM private key
};

// A CA: its certificate (CN = `name`) in `dir`/`name`.pem; it signs client certificates.
class test_ca {
public:
  test_ca(const cert_dir& dir, const std::string& name)
      : dir_(dir), name_(name), key_(detail::new_key()),
        cert_(detail::make_cert(name, key_.get(), nullptr, key_.get(), true)) {
    cert_file = dir.file(name + ".pem");
    detail::write_cert(cert_file, cert_.get());
  }
  // A client certificate with subject CN=`cn` signed by this CA, and its key:
  // `dir`/{CA name}-{cn}.pem and .key.
  [[nodiscard]] cert_files issue(const std::string& cn) const {
    auto key = detail::new_key();
    auto cert = detail::make_cert(cn, key.get(), cert_.get(), key_.get(), false);
    cert_files out{dir_.file(name_ + "-" + cn + ".pem"), dir_.file(name_ + "-" + cn + ".key")};
    detail::write_cert(out.cert_file, cert.get());
    detail::write_key(out.key_file, key.get());
    return out;
  }

  std::string cert_file; // the CA certificate: what a server verifies client certificates with

private:
  const cert_dir& dir_;
  std::string name_;
  detail::pkey_ptr key_;
  detail::x509_ptr cert_;
};

} // namespace amqp::test
