// Checks the composite field tables against the spec XML, read at run time: every
// <type class="composite"> must have a table with the same descriptor code and name, the same
// fields in the same order, the same mandatory flags, a `symbols` member exactly for
// multiple="true" fields, a nullable member exactly for fields that are neither mandatory nor
// defaulted, and the spec's default for bool, unsigned and symbol members.
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "codec/spec_tables.hpp"

using amqp::detail::composite_info;

namespace {

struct xml_field {
  std::string name;
  std::string type;
  bool mandatory = false;
  bool multiple = false;
  std::optional<std::string> default_value;
};

struct xml_composite {
  std::string type_name;       // "open"
  std::string descriptor_name; // "amqp:open:list"
  std::uint64_t code = 0;
  std::vector<xml_field> fields;
};

// The value of attribute `name` in the tag text `tag` (from '<' to '>'), if present.
std::optional<std::string> attr(std::string_view tag, std::string_view name) {
  std::string key = " " + std::string(name) + "=\"";
  auto p = tag.find(key);
  if (p == std::string_view::npos) {
    return std::nullopt;
  }
  p += key.size();
  auto e = tag.find('"', p);
  REQUIRE(e != std::string_view::npos);
  return std::string(tag.substr(p, e - p));
}

// "0x00000000:0x00000010" -> 0x10.
std::uint64_t parse_code(const std::string& s) {
  auto colon = s.find(':');
  REQUIRE(colon != std::string::npos);
  auto hi = std::strtoull(s.substr(0, colon).c_str(), nullptr, 16);
  auto lo = std::strtoull(s.substr(colon + 1).c_str(), nullptr, 16);
  return (hi << 32) | lo;
}

// The composite types of one spec XML file, with a tag scanner: comments are skipped, each
// <type ...> is read with the <descriptor/> and <field/> tags up to its </type>.
std::vector<xml_composite> read_composites(const std::string& file) {
  // The project's copy beside the repository, else Debian's amqp-specs package (the same
  // files, which ./dev installs).
  std::ifstream in(std::string(AMQP_SHARED_DIR) + "/spec/amqp-1.0/" + file);
  if (!in.good()) {
    in.open("/usr/share/amqp/specs/1-0/" + file);
  }
  REQUIRE_MESSAGE(in.good(), file);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<xml_composite> out;
  std::optional<xml_composite> cur;
  std::size_t pos = 0;
  while ((pos = text.find('<', pos)) != std::string::npos) {
    if (text.compare(pos, 4, "<!--") == 0) {
      pos = text.find("-->", pos);
      REQUIRE(pos != std::string::npos);
      continue;
    }
    auto end = text.find('>', pos);
    REQUIRE(end != std::string::npos);
    std::string_view tag(text.data() + pos, end - pos + 1);
    pos = end + 1;
    if (tag.starts_with("<type ")) {
      if (attr(tag, "class") == "composite") {
        cur = xml_composite{*attr(tag, "name"), {}, 0, {}};
        if (tag.ends_with("/>")) {
          out.push_back(std::move(*cur));
          cur.reset();
        }
      }
    } else if (tag.starts_with("</type")) {
      if (cur) {
        out.push_back(std::move(*cur));
        cur.reset();
      }
    } else if (cur && tag.starts_with("<descriptor ")) {
      cur->descriptor_name = attr(tag, "name").value_or("");
      cur->code = parse_code(attr(tag, "code").value_or(""));
    } else if (cur && tag.starts_with("<field ")) {
      cur->fields.push_back({*attr(tag, "name"), attr(tag, "type").value_or(""),
                             attr(tag, "mandatory") == "true", attr(tag, "multiple") == "true",
                             attr(tag, "default")});
    }
  }
  return out;
}

// messaging.xml gives the header's fields no default attribute; the defaults are in the
// prose of AMQP 1.0 §3.2.1 ("durable ... default false", "priority ... default 4", ...).
// Without them the header could not be written as list0.
void add_prose_defaults(std::vector<xml_composite>& all) {
  const std::pair<std::string_view, std::string_view> header_defaults[] = {
      {"durable", "false"},
      {"priority", "4"},
      {"first-acquirer", "false"},
      {"delivery-count", "0"}};
  for (auto& c : all) {
    if (c.type_name != "header") {
      continue;
    }
    for (auto& f : c.fields) {
      for (const auto& [name, value] : header_defaults) {
        if (f.name == name) {
          REQUIRE_FALSE(f.default_value.has_value()); // the XML gained one: drop ours
          f.default_value = std::string(value);
        }
      }
    }
  }
}

std::vector<xml_composite> spec_composites() {
  std::vector<xml_composite> all;
  for (const char* f :
       {"transport.bare.xml", "messaging.bare.xml", "security.bare.xml", "transactions.bare.xml"}) {
    auto v = read_composites(f);
    all.insert(all.end(), v.begin(), v.end());
  }
  add_prose_defaults(all);
  return all;
}

// Differences between the XML and our tables, one line each; empty when they agree.
std::vector<std::string> differences(const std::vector<xml_composite>& spec,
                                     const std::vector<composite_info>& ours) {
  std::vector<std::string> d;
  for (const auto& x : spec) {
    auto it = std::find_if(ours.begin(), ours.end(),
                           [&](const composite_info& c) { return c.name == x.descriptor_name; });
    if (it == ours.end()) {
      d.push_back(x.type_name + ": no table for " + x.descriptor_name);
      continue;
    }
    if (it->code != x.code) {
      d.push_back(x.type_name + ": descriptor code differs");
    }
    if (it->fields.size() != x.fields.size()) {
      d.push_back(x.type_name + ": " + std::to_string(it->fields.size()) + " fields, spec has " +
                  std::to_string(x.fields.size()));
    }
    for (std::size_t k = 0; k < std::min(it->fields.size(), x.fields.size()); ++k) {
      const auto& f = it->fields[k];
      const auto& s = x.fields[k];
      std::string where = x.type_name + "." + s.name + ": ";
      if (f.name != s.name) {
        d.push_back(where + "field " + std::to_string(k) + " is " + std::string(f.name));
      }
      if (f.mandatory != s.mandatory) {
        d.push_back(where + "mandatory flag differs");
      }
      if (f.multiple != s.multiple) {
        d.push_back(where + "multiple differs (symbols member)");
      }
      bool nullable = !s.mandatory && !s.default_value; // symbols: always nullable
      if (!s.multiple && f.nullable != nullable) {
        d.push_back(where + (nullable ? "should be nullable" : "should not be nullable"));
      }
      if (!f.default_text.empty() && s.default_value && f.default_text != *s.default_value) {
        d.push_back(where + "default " + f.default_text + ", spec " + *s.default_value);
      }
    }
  }
  for (const auto& c : ours) {
    bool in_spec = std::any_of(spec.begin(), spec.end(),
                               [&](const xml_composite& x) { return x.descriptor_name == c.name; });
    if (!in_spec) {
      d.push_back(std::string(c.name) + ": not in the spec");
    }
  }
  return d;
}

} // namespace

TEST_CASE("spec xml: the scanner finds every composite") {
  auto spec = spec_composites();
  // transport 10, messaging 13 (with header and properties), security 5, transactions 5.
  CHECK(spec.size() == 33);
  auto open = std::find_if(spec.begin(), spec.end(), [](auto& c) { return c.type_name == "open"; });
  REQUIRE(open != spec.end());
  CHECK(open->descriptor_name == "amqp:open:list");
  CHECK(open->code == 0x10);
  REQUIRE(open->fields.size() == 10);
  CHECK(open->fields[0].name == "container-id");
  CHECK(open->fields[0].mandatory);
  CHECK(open->fields[2].default_value == "4294967295");
  CHECK(open->fields[5].multiple);
}

TEST_CASE("spec xml: our composite tables match the spec") {
  auto spec = spec_composites();
  auto ours = amqp::detail::all_composites();
  CHECK(ours.size() == spec.size());
  for (const auto& line : differences(spec, ours)) {
    FAIL_CHECK(line);
  }
}

TEST_CASE("spec xml: the comparison catches a changed table") {
  auto spec = spec_composites();
  auto ours = amqp::detail::all_composites();
  REQUIRE(differences(spec, ours).empty());
  auto begin =
      std::find_if(ours.begin(), ours.end(), [](auto& c) { return c.name == "amqp:begin:list"; });
  REQUIRE(begin != ours.end());
  SUBCASE("renamed field") {
    begin->fields[1].name = "next-outgoing";
  }
  SUBCASE("reordered fields") {
    std::swap(begin->fields[2], begin->fields[3]);
  }
  SUBCASE("missing field") {
    begin->fields.pop_back();
  }
  SUBCASE("mandatory flag") {
    begin->fields[0].mandatory = true;
  }
  SUBCASE("descriptor code") {
    begin->code = 0x12;
  }
  SUBCASE("descriptor name") {
    begin->name = "amqp:begin:map";
  }
  SUBCASE("default") {
    begin->fields[4].default_text = "65535";
  }
  CHECK_FALSE(differences(spec, ours).empty());
}
