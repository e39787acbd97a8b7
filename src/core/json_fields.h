// Typed access to the fields of a checkpoint's JSON files with the errors every loader gives: the
// file, the field (with its enclosing object) and expected vs got, prefixed by the loader's name
// (`who`: "smolvla", "pi0"). Objects are ordered_json (json_file.h: key order carries meaning).
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vlart/error.h"

namespace vlart::jsonf {
using json = nlohmann::ordered_json;

// JSON type names in errors: "integer" rather than nlohmann's "number" for integer fields.
inline std::string got_of(const json& v) {
  if (v.is_number_integer()) return "integer " + v.dump();
  if (v.is_number()) return "number " + v.dump();
  if (v.is_string()) return "string " + v.dump();
  if (v.is_boolean()) return std::string("boolean ") + (v.get<bool>() ? "true" : "false");
  return v.type_name();
}

template <typename T>
struct JsonKind;
template <>
struct JsonKind<int64_t> {
  static constexpr const char* name = "an integer";
  static bool ok(const json& v) { return v.is_number_integer(); }
};
template <>
struct JsonKind<int> {
  static constexpr const char* name = "an integer";
  static bool ok(const json& v) {
    return v.is_number_unsigned() ? v.get<uint64_t>() <= 0x7fffffffull
                                  : v.is_number_integer() && v.get<int64_t>() >= -0x7fffffffll - 1 &&
                                        v.get<int64_t>() <= 0x7fffffffll;
  }
};
template <>
struct JsonKind<double> {
  static constexpr const char* name = "a number";
  static bool ok(const json& v) { return v.is_number(); }
};
template <>
struct JsonKind<bool> {
  static constexpr const char* name = "a boolean";
  static bool ok(const json& v) { return v.is_boolean(); }
};
template <>
struct JsonKind<std::string> {
  static constexpr const char* name = "a string";
  static bool ok(const json& v) { return v.is_string(); }
};

// Typed field access with errors naming the file, the field and expected vs got; `def` is used when
// the field is absent or null. `where` is the file path, optionally followed by the enclosing
// object (": \"pruning\".vlm_layers[2]").
template <typename T>
T field(const std::string& who, const json& j, const char* key, const std::string& where, const T* def = nullptr) {
  VLART_CHECK(j.is_object(), FormatError, who, ": ", where, ": expected an object holding '", key, "', got ",
              got_of(j));
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) {
    if (def) return *def;
    throw FormatError(who + ": " + where + ": missing field '" + key + "' (expected " + JsonKind<T>::name + ")");
  }
  VLART_CHECK(JsonKind<T>::ok(*it), FormatError, who, ": ", where, ": field '", key, "' is ", got_of(*it),
              ", expected ", JsonKind<T>::name);
  if (it->is_number_unsigned() && it->template get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    throw FormatError(who + ": " + where + ": field '" + key + "' is " + it->dump() + ", out of range");
  return it->template get<T>();
}
template <typename T>
T field_or(const std::string& who, const json& j, const char* key, const std::string& where, T def) {
  return field<T>(who, j, key, where, &def);
}

// An integer field that must be >= lo (">= 1" for sizes).
inline int64_t int_at_least(const std::string& who, const json& j, const char* key, const std::string& where, int64_t lo,
                            const int64_t* def = nullptr) {
  const int64_t v = field<int64_t>(who, j, key, where, def);
  VLART_CHECK(v >= lo, FormatError, who, ": ", where, ": field '", key, "' is ", v, ", expected an integer >= ", lo);
  return v;
}
inline int64_t size_or(const std::string& who, const json& j, const char* key, const std::string& where, int64_t def) {
  return int_at_least(who, j, key, where, 1, &def);
}
inline int64_t size_field(const std::string& who, const json& j, const char* key, const std::string& where) {
  return int_at_least(who, j, key, where, 1);
}
inline double positive_number(const std::string& who, const json& j, const char* key, const std::string& where,
                              double def) {
  const double v = field_or<double>(who, j, key, where, def);
  VLART_CHECK(std::isfinite(v) && v > 0, FormatError, who, ": ", where, ": field '", key, "' is ", v,
              ", expected a finite number > 0");
  return v;
}

// `shape` of feature `name` (at `path`, e.g. "input_features.observation.state"): an array of `rank`
// integers >= 1.
inline std::vector<int64_t> feature_shape(const std::string& who, const json& feat, const std::string& path, size_t rank,
                                          const std::string& pf, const char* what) {
  auto it = feat.find("shape");
  VLART_CHECK(it != feat.end() && !it->is_null(), FormatError, who, ": ", pf, ": missing field '", path,
              ".shape' (expected ", what, ")");
  VLART_CHECK(it->is_array(), FormatError, who, ": ", pf, ": field '", path, ".shape' is ", got_of(*it),
              ", expected ", what);
  VLART_CHECK(it->size() == rank, FormatError, who, ": ", pf, ": field '", path, ".shape' is ", it->dump(),
              ", expected ", what);
  std::vector<int64_t> s;
  for (const json& d : *it) {
    VLART_CHECK(d.is_number_integer() && d.get<int64_t>() >= 1, FormatError, who, ": ", pf, ": field '", path,
                ".shape' is ", it->dump(), ", expected ", what);
    s.push_back(d.get<int64_t>());
  }
  return s;
}

// LeRobot's FeatureType names.
inline bool known_feature_type(const std::string& t) {
  for (const char* k : {"VISUAL", "STATE", "ENV", "ACTION", "REWARD", "LANGUAGE"})
    if (t == k) return true;
  return false;
}

}  // namespace vlart::jsonf
