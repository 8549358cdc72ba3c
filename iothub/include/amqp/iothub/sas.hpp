// Shared access signature (SAS) tokens of Azure IoT Hub and Event Hubs (doc §2.1), and the
// URL-encoding and base64 they are made of.
//
//   SharedAccessSignature sr={url-encoded resource URI}&sig={url-encoded base64 HMAC}
//                         &se={expiry, seconds since the epoch}[&skn={policy name}]
//
// The signed string is `sr` exactly as it appears in the token, "\n", and `se`; the key is
// the base64-decoded shared access key; the MAC is HMAC-SHA256 (OpenSSL's libcrypto). No
// function here reads a clock: the current time is always an argument.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "amqp/iothub/errors.hpp"
#include "amqp/result.hpp"

namespace amqp::iothub {

// ---- URL encoding (RFC 3986 §2.1, §2.3) ---------------------------------------------------

// How url_encode writes hex digits.
enum class url_style : std::uint8_t {
  // %XX in upper case, as RFC 3986 §2.1 recommends.
  rfc3986,
  // As azure-iot-common's encodeUriComponentStrict (NODE common/core/src/authorization.ts):
  // encodeURIComponent's upper-case escapes, except that `!'()*` are replaced by '%' and the
  // lower-case hex of their code, so `*` becomes "%2a" (the other four have no hex letter).
  node,
};

// Percent-encodes every byte of `s` that is not an RFC 3986 unreserved character
// (ALPHA DIGIT - . _ ~), `/` included. With url_style::node the output equals the Node SDK's
// encodeUriComponentStrict for every UTF-8 string.
[[nodiscard]] std::string url_encode(std::string_view s, url_style style = url_style::rfc3986);

// Decodes %XX escapes (either case of hex digit). `+` is a literal plus sign, not a space:
// these are URI components (RFC 3986), not application/x-www-form-urlencoded data, and the
// hub's ids may contain `+` but never a space. Errors: errc::invalid_value for a `%` not
// followed by two hex digits, or a decoded NUL byte (never valid in an id or a URI).
[[nodiscard]] result<std::string> url_decode(std::string_view s, std::string* why = nullptr);

// ---- base64 (RFC 4648 §4, standard alphabet, with padding) --------------------------------

[[nodiscard]] std::string base64_encode(std::span<const std::byte> data);

// Strict decoding: length a multiple of 4, `=` only as the last one or two characters, no
// whitespace, the unused bits of the last character zero (so that each byte string has
// exactly one accepted encoding). Errors: errc::invalid_value.
[[nodiscard]] result<std::vector<std::byte>> base64_decode(std::string_view text,
                                                           std::string* why = nullptr);

// ---- tokens --------------------------------------------------------------------------------

// The longest token text parse_sas_token accepts (DOC-SAS shows tokens of about 200
// characters; a resource URI holds at most a host and two 128-character ids).
inline constexpr std::size_t max_sas_token_length = 4096;

// The prefix of every token: "SharedAccessSignature ".
inline constexpr std::string_view sas_token_prefix = "SharedAccessSignature ";

// A parsed token. Fields hold the text found in the token, as received.
struct sas_token {
  // `sr` as received (URL-encoded or not, as the signer wrote it): the text the signature is
  // over, and, decoded, the resource URI the token grants.
  std::string resource;
  // `sig`, URL-decoded: the base64 text of the 32-byte HMAC-SHA256.
  std::string signature;
  // `se`: seconds since the Unix epoch.
  std::uint64_t expiry = 0;
  // `skn`, URL-decoded; absent for device and module keys, present for policy keys.
  std::optional<std::string> key_name;

  friend bool operator==(const sas_token&, const sas_token&) = default;
};

// The signature of `resource` + "\n" + `expiry` with `key` (the decoded key), base64-encoded,
// not URL-encoded.
[[nodiscard]] std::string sas_signature(std::string_view resource, std::uint64_t expiry,
                                        std::span<const std::byte> key);

// How a shared access key becomes the HMAC key. IoT Hub decodes the base64 key (doc §2.1);
// Event Hubs (and so the built-in endpoint's Event Hubs-compatible namespace) uses the
// key's text as it is, its UTF-8 bytes: @azure/core-amqp's createHmac("sha256", key) and
// uAMQP's SASTokenAuth.from_shared_access_key sign so (docs/iothub-sdk-behaviour.md §1).
enum class sas_key_form : std::uint8_t {
  base64_decoded, // IoT Hub
  text,           // Event Hubs
};

// Creates a token as the Node SDK does (NODE SharedAccessKeyAuthenticationProvider and
// SharedAccessSignature.create): sr = url_encode(resource_uri, url_style::node), signed in
// that encoded form; skn URL-encoded the same way when `key_name` is not empty; fields in
// the order sr, sig, skn, se. `key` is the base64 shared access key of the connection
// string, made the HMAC key as `form` says (sas_key_form::text for Event Hubs resources).
// Errors: errc::invalid_value (`key` empty or not base64, or empty `resource_uri`).
[[nodiscard]] result<std::string> make_sas_token(std::string_view resource_uri,
                                                 std::string_view key, std::uint64_t expiry,
                                                 std::string_view key_name = {},
                                                 std::string* why = nullptr,
                                                 sas_key_form form = sas_key_form::base64_decoded);

// Parses a token: the prefix "SharedAccessSignature " then `name=value` fields separated by
// `&`, in any order, each of sr, sig, se exactly once and skn at most once. Errors (with the
// reason in `why`): errc::limit_exceeded (longer than max_sas_token_length),
// errc::invalid_value (no prefix, a field without `=`, an unknown field name, an empty
// value, a malformed escape, `se` not a decimal number, `sig` not the base64 of 32 bytes),
// errc::missing_field (sr, sig or se absent), errc::conflict (a field given twice).
[[nodiscard]] result<sas_token> parse_sas_token(std::string_view text, std::string* why = nullptr);

// The token as text, fields in the order sr, sig, skn, se (as the Node SDK), `sig` and `skn`
// URL-encoded (url_style::rfc3986); `resource` is written as it is held.
[[nodiscard]] std::string to_string(const sas_token& token);

// Checks the signature of `token` against one or two base64 keys (the secondary may be empty),
// comparing in constant time (CRYPTO_memcmp). The hub's rule (doc §2.1): the signed text may
// be `sr` as received, its URL-decoded form, or the decoded form URL-encoded again (upper-
// and lower-case hex: SDKs differ); each is tried with each key, taken as `form` says.
// Returns the index of the key that matched (0 primary, 1 secondary). Errors:
// errc::signature_mismatch, and errc::invalid_value when a key is not base64 or the primary
// key is empty (HMAC takes an empty key, so anyone could sign with it).
[[nodiscard]] result<std::size_t>
verify_sas_signature(const sas_token& token, std::string_view primary_key,
                     std::string_view secondary_key = {}, std::string* why = nullptr,
                     sas_key_form form = sas_key_form::base64_decoded);

// Checks that the token is not expired at `now` (seconds since the epoch), allowing `grace`
// seconds after `se` (the hub allowed minutes in the past, doc §2.5). Errors:
// errc::token_expired.
[[nodiscard]] result<void> check_sas_expiry(const sas_token& token, std::uint64_t now,
                                            std::uint64_t grace = 0, std::string* why = nullptr);

// True when the token's resource URI covers `address` (doc §2.1, DOC-SAS): the URL-decoded,
// lower-cased resource is a segment-wise prefix of the URL-decoded, lower-cased address
// (`a/b` covers `a/b/c`, not `a/bc`), a scheme (`amqps://`, `sb://`, ...) and a port on
// either side ignored. So `localhost:5671/devices/d1`, `localhost/devices/d1`,
// `amqps://localhost:5671/devices/d1` all cover `amqps://localhost/devices/d1/messages/events`,
// and `sb://ns/hub` covers `sb://ns:5671/hub/ConsumerGroups/$Default/Partitions/0`. An address
// that is a bare path (`/devices/d1/...`, as Node sends) is taken on `default_host`. A
// resource or address that does not URL-decode covers nothing.
[[nodiscard]] bool sas_covers(std::string_view resource, std::string_view address,
                              std::string_view default_host = {});

} // namespace amqp::iothub
