// Pieces shared by every benchmark (bench_codec, bench_engine, bench_tcp, bench_broker), on
// the standard library alone: the two implementations compared, the command line walked one
// argument at a time, the order of a round (which implementation goes first alternates),
// medians and the `ratio.` lines.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace amqp::bench {

// The two implementations a benchmark compares.
enum class impl : std::uint8_t { ours, proton };

// `--impl V`: "ours", or "proton" and `proton_name` (e.g. "proton-c"); nothing for any other V.
inline std::optional<impl> parse_impl(std::string_view v, std::string_view proton_name) {
  if (v == "ours") {
    return impl::ours;
  }
  if (v == "proton" || v == proton_name) {
    return impl::proton;
  }
  return std::nullopt;
}

// The implementations to run: the one --impl names, or both (ours first).
inline std::vector<impl> impls_to_run(const std::optional<impl>& only) {
  if (only) {
    return {*only};
  }
  return {impl::ours, impl::proton};
}

// The order of round `round` (from 0): `impls` as they are in even rounds, reversed in odd
// ones, so that neither implementation always runs on what the other left (caches, clock).
inline std::vector<impl> round_order(std::vector<impl> impls, int round) {
  if (round % 2 != 0) {
    std::reverse(impls.begin(), impls.end());
  }
  return impls;
}

// Calls `on(arg, next)` for each of argv[1], argv[2], ...: `next()` takes the argument after
// `arg` (its value) and returns it, or calls usage() when there is none. usage() when `on`
// returns false (an argument it does not know).
template <class On> void for_each_arg(int argc, char** argv, void (*usage)(), On on) {
  const std::span<char*> args(argv, static_cast<std::size_t>(argc));
  for (std::size_t i = 1; i < args.size(); ++i) {
    auto next = [&]() -> const char* {
      if (i + 1 >= args.size()) {
        usage();
      }
      return args[++i];
    };
    if (!on(std::string_view(args[i]), next)) {
      usage();
    }
  }
}

// The median (0 for no values).
inline double median(std::vector<double> v) {
  if (v.empty()) {
    return 0;
  }
  std::sort(v.begin(), v.end());
  const std::size_t k = v.size() / 2;
  return v.size() % 2 != 0 ? v[k] : (v[k - 1] + v[k]) / 2;
}

// `NAME MEDIAN x`, then `NAME.roundK RATIO x` for each round's ratio (nothing when there are
// no ratios).
inline void print_ratios(const std::string& name, const std::vector<double>& ratios) {
  if (ratios.empty()) {
    return;
  }
  std::printf("%s %.2f x\n", name.c_str(), median(ratios));
  for (std::size_t k = 0; k < ratios.size(); ++k) {
    std::printf("%s.round%zu %.2f x\n", name.c_str(), k + 1, ratios[k]);
  }
}

} // namespace amqp::bench
