// Added tokens (special and not): recognised in the raw text before pre-tokenization, like
// tokenizers' AddedVocabulary: leftmost-longest matching, then single_word / lstrip / rstrip.
// Tokens with normalized=false are matched on the raw text, the others (normalized themselves) on
// the normalized text.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/json_fields.h"

namespace vlart::tok {

struct AddedToken {
  int32_t id = -1;
  std::string content;
  std::string pattern;  // what is matched: content, or its normalized form for normalized tokens
  bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
};

// A slice of a text: an added token (id >= 0) or plain text for the pre-tokenizer (id == -1).
struct Segment {
  size_t begin, end;
  int32_t id;
};

class BpeModel;
class Normalizer;

class AddedVocab {
 public:
  // Ids are assigned the way tokenizers does on load, not read from the file: a token already in
  // the model vocabulary keeps its model id, the others get model-size, model-size + 1, ... in file
  // order. (tokenizers only warns when the stored "id" disagrees; files it wrote always agree.)
  // `norm` (may be null): the tokenizer's normalizer; a normalized token is matched as its normalized
  // content, on normalized text (tokenizers normalizes the content when it builds its matcher).
  void parse(const Json* list, const JsonCtx& ctx, const BpeModel& model, const Normalizer* norm);

  // Splits `s` with the normalized (true) or non-normalized (false) token set.
  void split(std::string_view s, bool normalized_set, std::vector<Segment>& out) const;

  const AddedToken* find_id(int32_t id) const;
  std::optional<int32_t> find_content(std::string_view content) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  struct MatchSet {
    // Token indices bucketed by first byte, longest first, so the first hit at a position is the
    // longest one.
    std::array<std::vector<size_t>, 256> by_first_byte;
    bool empty = true;
  };
  void leftmost_longest(std::string_view s, const MatchSet& set, std::vector<Segment>& out) const;

  std::vector<AddedToken> tokens_;
  std::unordered_map<int32_t, size_t> by_id_;
  std::unordered_map<std::string, size_t> by_content_;
  MatchSet normalized_, raw_;
};

}  // namespace vlart::tok
