// The .text and file sizes of an ELF program or library (bench_size, bench_iothub).
#pragma once

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <elf.h>

namespace amqp::bench {

// The .text size and file size of a 64-bit ELF file.
struct elf_size {
  std::uint64_t text = 0; // the .text section
  std::uint64_t file = 0; // the whole file
};

// `fail` reports an error and does not return.
template <typename Fail> elf_size read_elf(const std::string& path, Fail fail) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    fail("cannot read " + path);
  }
  const std::vector<char> bytes((std::istreambuf_iterator<char>(f)),
                                std::istreambuf_iterator<char>());
  Elf64_Ehdr eh;
  if (bytes.size() < sizeof eh) {
    fail(path + ": not an ELF file");
  }
  std::memcpy(&eh, bytes.data(), sizeof eh);
  if (std::memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
      eh.e_shentsize != sizeof(Elf64_Shdr) ||
      eh.e_shoff + std::uint64_t{eh.e_shnum} * sizeof(Elf64_Shdr) > bytes.size() ||
      eh.e_shstrndx >= eh.e_shnum) {
    fail(path + ": not a 64-bit ELF file with section headers");
  }
  auto section = [&](std::size_t k) {
    Elf64_Shdr sh;
    std::memcpy(&sh, bytes.data() + eh.e_shoff + k * sizeof sh, sizeof sh);
    return sh;
  };
  const Elf64_Shdr names = section(eh.e_shstrndx);
  elf_size s{0, bytes.size()};
  for (std::size_t k = 0; k < eh.e_shnum; ++k) {
    const Elf64_Shdr sh = section(k);
    const std::uint64_t at = names.sh_offset + sh.sh_name;
    if (at + 6 <= bytes.size() && std::memcmp(bytes.data() + at, ".text", 6) == 0) {
      s.text += sh.sh_size;
    }
  }
  if (s.text == 0) {
    fail(path + ": no .text section");
  }
  return s;
}

} // namespace amqp::bench
