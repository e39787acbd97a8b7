#include "core/json_file.h"

#include <fstream>

#include "vlart/error.h"

namespace vlart {

nlohmann::ordered_json read_json_file(const std::string& path, const std::string& who) {
  const std::string pre = who.empty() ? "" : who + ": ";
  std::ifstream f(path);
  if (!f.good()) throw IoError(pre + "cannot open " + path);
  try {
    return nlohmann::ordered_json::parse(f);
  } catch (const std::exception& e) {
    throw FormatError(pre + path + " is not valid JSON: " + e.what());
  }
}

}  // namespace vlart
