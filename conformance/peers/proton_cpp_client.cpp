// Qpid Proton C++ client with the command line of `amqp-cli send/receive`:
//
//   proton_cpp_client send URL ADDRESS [--count N] [--presettled] [--size BYTES | --body TEXT]
//       [--property K=V]... [--ca F] [--cert F --key F] [--insecure] [--sasl MECH]
//       [--idle-timeout MS] [--trace] [--timeout S]
//   proton_cpp_client receive URL ADDRESS [--count N] [--outcome accept|reject|release|modify]
//       [--credit C] [--timeout S] [--print] [--expect-size BYTES] [--presettled] (+ TLS/SASL)
//
// Prints "sent N accepted A rejected R released L modified M" or "received N" and exits 0
// only when the scenario succeeded. Built by CMakeLists.txt (links -lqpid-proton-cpp).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <proton/connection.hpp>
#include <proton/connection_options.hpp>
#include <proton/container.hpp>
#include <proton/delivery.h>
#include <proton/delivery.hpp>
#include <proton/disposition.h>
#include <proton/duration.hpp>
#include <proton/error_condition.hpp>
#include <proton/message.hpp>
#include <proton/messaging_handler.hpp>
#include <proton/receiver.hpp>
#include <proton/receiver_options.hpp>
#include <proton/sender.hpp>
#include <proton/sender_options.hpp>
#include <proton/session.hpp>
#include <proton/ssl.hpp>
#include <proton/tracker.hpp>
#include <proton/transport.hpp>
#include <proton/types.hpp>
#include <proton/work_queue.hpp>

namespace {

struct options {
  std::string mode, url, address;
  int count = 1;
  bool presettled = false;
  long size = -1;
  std::string body;
  bool has_body = false;
  std::vector<std::pair<std::string, std::string>> properties;
  std::string ca, cert, key, sasl;
  bool insecure = false;
  int idle_timeout_ms = 0;
  bool trace = false;
  double timeout_s = 30;
  std::string outcome = "accept";
  int credit = 100;
  bool print = false;
  long expect_size = -1;
};

struct url_parts {
  bool tls = false;
  std::string user, password, host;
  int port = 5672;
  bool has_user = false;
};

std::string percent_decode(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size()) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

url_parts parse_url(const std::string& url) {
  url_parts u;
  std::string rest;
  if (url.rfind("amqps://", 0) == 0) {
    u.tls = true;
    u.port = 5671;
    rest = url.substr(8);
  } else if (url.rfind("amqp://", 0) == 0) {
    rest = url.substr(7);
  } else {
    throw std::invalid_argument("unsupported URL " + url);
  }
  rest = rest.substr(0, rest.find('/'));
  auto at = rest.rfind('@');
  if (at != std::string::npos) {
    std::string cred = rest.substr(0, at);
    rest = rest.substr(at + 1);
    auto colon = cred.find(':');
    u.has_user = true;
    u.user = percent_decode(cred.substr(0, colon));
    if (colon != std::string::npos)
      u.password = percent_decode(cred.substr(colon + 1));
  }
  auto colon = rest.rfind(':');
  if (colon != std::string::npos && rest.find(']') == std::string::npos) {
    u.host = rest.substr(0, colon);
    u.port = std::stoi(rest.substr(colon + 1));
  } else {
    u.host = rest;
  }
  return u;
}

options parse_args(int argc, char** argv) {
  options o;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc)
        throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--count")
      o.count = std::stoi(value());
    else if (a == "--presettled")
      o.presettled = true;
    else if (a == "--size")
      o.size = std::stol(value());
    else if (a == "--body") {
      o.body = value();
      o.has_body = true;
    } else if (a == "--property") {
      std::string kv = value();
      auto eq = kv.find('=');
      if (eq == std::string::npos)
        throw std::invalid_argument("--property needs K=V");
      o.properties.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    } else if (a == "--ca")
      o.ca = value();
    else if (a == "--cert")
      o.cert = value();
    else if (a == "--key")
      o.key = value();
    else if (a == "--insecure")
      o.insecure = true;
    else if (a == "--sasl")
      o.sasl = value();
    else if (a == "--idle-timeout")
      o.idle_timeout_ms = std::stoi(value());
    else if (a == "--trace")
      o.trace = true;
    else if (a == "--timeout")
      o.timeout_s = std::stod(value());
    else if (a == "--outcome")
      o.outcome = value();
    else if (a == "--credit")
      o.credit = std::stoi(value());
    else if (a == "--print")
      o.print = true;
    else if (a == "--expect-size")
      o.expect_size = std::stol(value());
    else if (a.rfind("--", 0) == 0)
      throw std::invalid_argument("unknown option " + a);
    else
      pos.push_back(a);
  }
  if (pos.size() != 3 || (pos[0] != "send" && pos[0] != "receive"))
    throw std::invalid_argument("usage: proton_cpp_client send|receive URL ADDRESS [options]");
  if (o.outcome != "accept" && o.outcome != "reject" && o.outcome != "release" &&
      o.outcome != "modify")
    throw std::invalid_argument("bad --outcome " + o.outcome);
  o.mode = pos[0];
  o.url = pos[1];
  o.address = pos[2];
  return o;
}

bool is_ip(const std::string& host) {
  return !host.empty() && host.find_first_not_of("0123456789.:") == std::string::npos;
}

// --outcome modify sends modified{delivery-failed=true} (redeliver, delivery-count + 1), as
// the other clients here do; proton::delivery::modify() would leave delivery-failed false,
// so it is set through the C API.
struct delivery_access : proton::delivery {
  static pn_delivery_t* raw(const proton::delivery& d) {
    pn_delivery_t* (proton::internal::object<pn_delivery_t>::*get)() const =
        &delivery_access::pn_object;
    const proton::internal::object<pn_delivery_t>& base = d;
    return (base.*get)();
  }
};

void modify_delivery_failed(proton::delivery& d) {
  pn_delivery_t* pd = delivery_access::raw(d);
  pn_disposition_set_failed(pn_delivery_local(pd), true);
  pn_delivery_update(pd, PN_MODIFIED);
  pn_delivery_settle(pd);
}

class client : public proton::messaging_handler {
public:
  explicit client(const options& o) : o_(o), u_(parse_url(o.url)) {}

  void on_container_start(proton::container& c) override {
    proton::connection_options co;
    std::string mech = o_.sasl.empty() ? (u_.has_user ? "PLAIN" : "ANONYMOUS") : o_.sasl;
    std::transform(mech.begin(), mech.end(), mech.begin(), ::toupper);
    if (mech == "NONE") {
      co.sasl_enabled(false);
    } else {
      co.sasl_enabled(true).sasl_allowed_mechs(mech).sasl_allow_insecure_mechs(true);
      if (u_.has_user)
        co.user(u_.user).password(u_.password);
    }
    if (o_.idle_timeout_ms > 0)
      co.idle_timeout(proton::duration(o_.idle_timeout_ms));
    if (u_.tls) {
      auto mode = o_.insecure
                      ? proton::ssl::ANONYMOUS_PEER
                      : (is_ip(u_.host) ? proton::ssl::VERIFY_PEER : proton::ssl::VERIFY_PEER_NAME);
      if (!o_.cert.empty()) {
        proton::ssl_certificate cert(o_.cert, o_.key);
        co.ssl_client_options(proton::ssl_client_options(cert, o_.ca, mode));
      } else if (!o_.ca.empty()) {
        co.ssl_client_options(proton::ssl_client_options(o_.ca, mode));
      } else {
        co.ssl_client_options(proton::ssl_client_options());
      }
    }
    std::string url =
        std::string(u_.tls ? "amqps://" : "amqp://") + u_.host + ":" + std::to_string(u_.port);
    conn_ = c.connect(url, co);
    work_queue_ = &conn_.work_queue();
  }

  void on_connection_open(proton::connection& conn) override {
    auto mode =
        o_.presettled ? proton::delivery_mode::AT_MOST_ONCE : proton::delivery_mode::AT_LEAST_ONCE;
    if (o_.mode == "send") {
      conn.open_sender(o_.address, proton::sender_options().delivery_mode(mode));
    } else {
      conn.open_receiver(
          o_.address,
          proton::receiver_options().delivery_mode(mode).credit_window(0).auto_accept(false));
    }
  }

  // -- send ------------------------------------------------------------------------
  proton::message make_message(int i) const {
    proton::message m;
    m.id(static_cast<uint64_t>(i));
    m.durable(true);
    if (o_.size >= 0) {
      std::vector<uint8_t> bytes(static_cast<std::size_t>(o_.size));
      for (std::size_t k = 0; k < bytes.size(); ++k)
        bytes[k] = static_cast<uint8_t>((k + static_cast<std::size_t>(i)) % 251);
      m.body(proton::binary(bytes.begin(), bytes.end()));
    } else if (o_.has_body) {
      m.body(o_.body);
    } else {
      m.body("message " + std::to_string(i));
    }
    for (const auto& kv : o_.properties)
      m.properties().put(kv.first, kv.second);
    return m;
  }

  void on_sendable(proton::sender& s) override {
    while (!done_ && s.credit() > 0 && sent_ < o_.count) {
      s.send(make_message(sent_));
      ++sent_;
    }
    check_send();
  }

  void check_send() {
    if (sent_ == o_.count && (o_.presettled || settled_ == o_.count))
      finish();
  }

  void on_tracker_accept(proton::tracker&) override {
    ++accepted_;
    ++settled_;
    check_send();
  }
  void on_tracker_reject(proton::tracker&) override {
    ++rejected_;
    ++settled_;
    check_send();
  }
  void on_tracker_release(proton::tracker& t) override {
    if (t.state() == proton::transfer::MODIFIED)
      ++modified_;
    else
      ++released_;
    ++settled_;
    check_send();
  }

  // -- receive ---------------------------------------------------------------------
  void top_up(proton::receiver& r) {
    int want = std::min(o_.credit, o_.count - received_) - r.credit();
    if (want > 0)
      r.add_credit(static_cast<uint32_t>(want));
  }

  void on_receiver_open(proton::receiver& r) override { top_up(r); }

  void on_message(proton::delivery& d, proton::message& m) override {
    if (done_)
      return;
    if (o_.expect_size >= 0) {
      long size = -1;
      if (m.body().type() == proton::BINARY)
        size = static_cast<long>(proton::get<proton::binary>(m.body()).size());
      else if (m.body().type() == proton::STRING)
        size = static_cast<long>(proton::get<std::string>(m.body()).size());
      if (size != o_.expect_size && failure_.empty())
        failure_ = "message " + std::to_string(received_) + " has a " + std::to_string(size) +
                   "-byte body, expected " + std::to_string(o_.expect_size);
    }
    if (o_.print)
      std::cout << m.body() << std::endl;
    if (!d.settled()) {
      if (o_.outcome == "accept")
        d.accept();
      else if (o_.outcome == "reject")
        d.reject();
      else if (o_.outcome == "release")
        d.release();
      else
        modify_delivery_failed(d);
    }
    ++received_;
    proton::receiver r = d.receiver();
    if (received_ == o_.count) {
      r.close();
      finish();
    } else {
      top_up(r);
    }
  }

  // -- errors and end --------------------------------------------------------------
  void on_transport_error(proton::transport& t) override {
    if (failure_.empty())
      failure_ = "transport error: " + t.error().what();
    done_ = true;
  }
  void on_connection_error(proton::connection& c) override {
    fail("connection error: " + c.error().what());
  }
  void on_session_error(proton::session& s) override { fail("session error: " + s.error().what()); }
  void on_session_close(proton::session& s) override {
    if (!done_)
      fail("session ended by peer: " + s.error().what());
  }
  void on_sender_error(proton::sender& s) override { fail("link error: " + s.error().what()); }
  void on_receiver_error(proton::receiver& r) override { fail("link error: " + r.error().what()); }
  void on_sender_close(proton::sender& s) override {
    if (!done_)
      fail("link detached by peer: " + s.error().what());
  }
  void on_receiver_close(proton::receiver& r) override {
    if (!done_)
      fail("link detached by peer: " + r.error().what());
  }

  // Called on the container's thread (scheduled by the watchdog in main).
  void on_deadline() {
    if (!done_)
      fail("timed out after " + std::to_string(o_.timeout_s) + " s");
  }

  void fail(const std::string& why) {
    if (failure_.empty())
      failure_ = why;
    finish();
  }

  void finish() {
    if (done_)
      return;
    done_ = true;
    if (conn_ && conn_.active())
      conn_.close();
    else if (conn_)
      conn_.close();
  }

  int report() const {
    bool ok;
    if (o_.mode == "send") {
      std::cout << "sent " << sent_ << " accepted " << accepted_ << " rejected " << rejected_
                << " released " << released_ << " modified " << modified_ << std::endl;
      ok = sent_ == o_.count && (o_.presettled || accepted_ == o_.count);
    } else {
      std::cout << "received " << received_ << std::endl;
      ok = received_ == o_.count;
    }
    if (!failure_.empty())
      std::cerr << "proton_cpp_client: " << failure_ << std::endl;
    return ok && failure_.empty() ? 0 : 1;
  }

  std::string failure_;
  std::atomic<proton::work_queue*> work_queue_{nullptr};

private:
  options o_;
  url_parts u_;
  proton::connection conn_;
  bool done_ = false;
  int sent_ = 0, settled_ = 0, accepted_ = 0, rejected_ = 0, released_ = 0, modified_ = 0;
  int received_ = 0;
};

} // namespace

int main(int argc, char** argv) {
  options o;
  try {
    o = parse_args(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << e.what() << std::endl;
    return 2;
  }
  if (o.trace)
    setenv("PN_LOG", "frame", 1);
  client h(o);
  proton::container container(h);
  // Watchdog: at the deadline the scenario fails (on the container's thread); a peer that
  // then does not answer our close gets 3 s more before the process exits. (A timer
  // scheduled up front would keep container::run() from returning until it fires.)
  std::mutex mutex;
  std::condition_variable cv;
  bool finished = false;
  std::thread watchdog([&]() {
    std::unique_lock<std::mutex> lock(mutex);
    auto deadline = std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
    if (cv.wait_for(lock, deadline, [&] { return finished; }))
      return;
    if (proton::work_queue* q = h.work_queue_.load())
      q->add(proton::work([&h]() { h.on_deadline(); }));
    if (cv.wait_for(lock, std::chrono::seconds(3), [&] { return finished; }))
      return;
    std::cerr << "proton_cpp_client: timed out after " << o.timeout_s << " s" << std::endl;
    h.failure_ = "timed out";
    h.report();
    std::_Exit(1);
  });
  try {
    container.run();
  } catch (const std::exception& e) {
    if (h.failure_.empty())
      h.failure_ = e.what();
  }
  {
    std::lock_guard<std::mutex> lock(mutex);
    finished = true;
  }
  cv.notify_all();
  watchdog.join();
  return h.report();
}
