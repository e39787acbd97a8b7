// Typed access to tokenizer.json fields with errors that name the file and the field path
// (e.g. "model.merges[12]"), so a malformed file is diagnosable from the message alone.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "vlart/error.h"

namespace vlart::tok {

using Json = nlohmann::json;

struct JsonCtx {
  std::string source;  // file path or a caller-given name

  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw FormatError("tokenizer.json '" + source + "': field '" + field + "' " + what);
  }
  [[noreturn]] void unsupported(const std::string& field, const std::string& what) const {
    throw UnsupportedError("tokenizer.json '" + source + "': " + field + " " + what +
                           " is not supported by vlart::Tokenizer");
  }

  const Json& member(const Json& obj, const std::string& path, const char* key) const {
    if (!obj.is_object()) fail(path, "must be an object");
    auto it = obj.find(key);
    if (it == obj.end()) fail(join(path, key), "is missing");
    return *it;
  }
  // nullptr when absent or null.
  const Json* optional(const Json& obj, const char* key) const {
    auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  std::string string_of(const Json& v, const std::string& path) const {
    if (!v.is_string()) fail(path, "must be a string");
    return v.get<std::string>();
  }
  std::string string_member(const Json& obj, const std::string& path, const char* key) const {
    return string_of(member(obj, path, key), join(path, key));
  }
  bool bool_member(const Json& obj, const std::string& path, const char* key, bool dflt) const {
    const Json* v = optional(obj, key);
    if (!v) return dflt;
    if (!v->is_boolean()) fail(join(path, key), "must be a boolean");
    return v->get<bool>();
  }
  int64_t id_of(const Json& v, const std::string& path) const {
    if (!v.is_number_integer()) fail(path, "must be an integer id");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id > INT32_MAX) fail(path, "is out of range: " + std::to_string(id));
    return id;
  }
  // The literal of a Replace step's "pattern" ({"String": s}); a Regex pattern is unsupported.
  std::string replace_literal(const Json& step, const std::string& path) const {
    const Json& pat = member(step, path, "pattern");
    if (const Json* s = optional(pat, "String")) {
      std::string lit = string_of(*s, path + ".pattern.String");
      if (lit.empty()) unsupported(path + ".pattern.String", "'' (empty)");
      return lit;
    }
    if (optional(pat, "Regex")) unsupported(path + ".pattern", "Regex");
    fail(path + ".pattern", "must hold 'String' or 'Regex'");
  }
  static std::string join(const std::string& path, const char* key) {
    return path.empty() ? std::string(key) : path + "." + key;
  }
};

}  // namespace vlart::tok
