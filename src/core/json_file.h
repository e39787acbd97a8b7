// Reading a JSON file (config.json and friends) with the errors every loader gives: IoError when it
// cannot be opened, FormatError naming the file when it is not valid JSON. Key order is kept
// (ordered_json): where a checkpoint's object order carries meaning (cameras in input_features),
// a sorted map would silently reorder it.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace vlart {

// `who` prefixes the messages ("prune", "smolvla"); may be empty.
nlohmann::ordered_json read_json_file(const std::string& path, const std::string& who = "");

}  // namespace vlart
