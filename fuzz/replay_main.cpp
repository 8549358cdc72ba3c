// The replay runner of the fuzz targets when they are built without libFuzzer: runs
// LLVMFuzzerTestOneInput once on each file named on the command line, and on every file of
// each directory named (sorted by name, not recursive). ctest runs it over fuzz/corpus/<target>/
// and fuzz/regressions/<target>/.
//
//   fuzz_replay_<target> [--optional=DIR]... [PATH]...
//
// A PATH that does not exist is an error; an --optional directory may be absent. Other
// arguments starting with '-' (libFuzzer flags) are ignored. A failing check traps, so a
// crash names the input last printed with --verbose, or rerun the file alone.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

namespace fs = std::filesystem;

bool run_file(const fs::path& p, bool verbose) {
  std::ifstream f(p, std::ios::binary);
  if (!f) {
    std::fprintf(stderr, "replay: cannot read %s\n", p.string().c_str());
    return false;
  }
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (verbose) {
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", p.string().c_str(), bytes.size());
  }
  // An allocation of exactly the input's size, so that a sanitizer sees any overread.
  auto data = std::make_unique<std::uint8_t[]>(bytes.size());
  std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char*>(data.get()));
  (void)LLVMFuzzerTestOneInput(data.get(), bytes.size());
  return true;
}

} // namespace

int main(int argc, char** argv) {
  bool verbose = false;
  std::vector<fs::path> files;
  for (int k = 1; k < argc; ++k) {
    std::string_view arg = argv[k];
    bool optional = false;
    if (arg == "--verbose") {
      verbose = true;
      continue;
    }
    if (arg.starts_with("--optional=")) {
      optional = true;
      arg.remove_prefix(std::string_view("--optional=").size());
    } else if (arg.starts_with("-")) {
      continue;
    }
    const fs::path p{std::string(arg)};
    std::error_code ec;
    if (fs::is_directory(p, ec)) {
      std::vector<fs::path> in_dir;
      for (const auto& e : fs::directory_iterator(p, ec)) {
        if (e.is_regular_file()) {
          in_dir.push_back(e.path());
        }
      }
      if (ec) {
        std::fprintf(stderr, "replay: cannot list %s: %s\n", p.string().c_str(),
                     ec.message().c_str());
        return 1;
      }
      std::sort(in_dir.begin(), in_dir.end());
      files.insert(files.end(), in_dir.begin(), in_dir.end());
    } else if (fs::is_regular_file(p, ec)) {
      files.push_back(p);
    } else if (!optional) {
      std::fprintf(stderr, "replay: no such file or directory: %s\n", p.string().c_str());
      return 1;
    }
  }
  for (const auto& f : files) {
    if (!run_file(f, verbose)) {
      return 1;
    }
  }
  std::printf("replay: %zu inputs ran without a failure\n", files.size());
  return 0;
}
