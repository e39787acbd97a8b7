#include "tokenizer/added_vocab.h"

#include "tokenizer/normalizer.h"

#include <algorithm>

#include "tokenizer/bpe_model.h"
#include "tokenizer/unicode_classes.h"
#include "tokenizer/utf8.h"

namespace vlart::tok {
namespace {

// The code point that ends s (s non-empty, valid UTF-8).
char32_t last_char(std::string_view s) {
  size_t i = s.size() - 1;
  while (i > 0 && (static_cast<unsigned char>(s[i]) & 0xC0) == 0x80) --i;
  return decode_utf8(s, i).cp;
}

}  // namespace

void AddedVocab::parse(const Json* list, const JsonCtx& ctx, const BpeModel& model, const Normalizer* norm) {
  if (!list) return;
  int64_t next_id = static_cast<int64_t>(model.size());
  if (!list->is_array()) ctx.fail("added_tokens", "must be an array");
  for (size_t i = 0; i < list->size(); ++i) {
    const std::string path = "added_tokens[" + std::to_string(i) + "]";
    const Json& j = (*list)[i];
    AddedToken t;
    ctx.id_of(ctx.member(j, path, "id"), path + ".id");  // validated, then reassigned below
    t.content = ctx.string_member(j, path, "content");
    t.special = ctx.bool_member(j, path, "special", false);
    t.single_word = ctx.bool_member(j, path, "single_word", false);
    t.lstrip = ctx.bool_member(j, path, "lstrip", false);
    t.rstrip = ctx.bool_member(j, path, "rstrip", false);
    t.normalized = ctx.bool_member(j, path, "normalized", !t.special);
    if (t.content.empty()) continue;  // tokenizers ignores empty added tokens
    if (find_invalid_utf8(t.content) != std::string::npos) ctx.fail(path + ".content", "is not valid UTF-8");
    if (auto known = by_content_.find(t.content); known != by_content_.end()) {
      t.id = tokens_[known->second].id;
    } else if (auto mid = model.token_to_id(t.content)) {
      t.id = *mid;
    } else {
      if (next_id > INT32_MAX) ctx.fail(path, "overflows the id range");
      t.id = static_cast<int32_t>(next_id++);
    }
    auto it = by_id_.find(t.id);
    if (it != by_id_.end()) {
      by_content_.erase(tokens_[it->second].content);
      tokens_[it->second] = t;  // a later entry for the same id replaces the earlier one
    } else {
      by_id_[t.id] = tokens_.size();
      tokens_.push_back(t);
    }
    by_content_[t.content] = by_id_[t.id];
  }
  for (size_t k = 0; k < tokens_.size(); ++k) {
    AddedToken& t = tokens_[k];
    t.pattern = t.content;
    if (t.normalized && norm) norm->apply(t.pattern);
    if (by_content_.at(t.content) != k || t.pattern.empty()) continue;  // shadowed duplicate content
    MatchSet& set = t.normalized ? normalized_ : raw_;
    set.by_first_byte[static_cast<unsigned char>(t.pattern[0])].push_back(k);
    set.empty = false;
  }
  for (MatchSet* set : {&normalized_, &raw_}) {
    for (auto& bucket : set->by_first_byte)
      std::stable_sort(bucket.begin(), bucket.end(),
                       [&](size_t a, size_t b) { return tokens_[a].pattern.size() > tokens_[b].pattern.size(); });
  }
}

const AddedToken* AddedVocab::find_id(int32_t id) const {
  auto it = by_id_.find(id);
  return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocab::find_content(std::string_view content) const {
  auto it = by_content_.find(std::string(content));
  if (it == by_content_.end()) return std::nullopt;
  return tokens_[it->second].id;
}

void AddedVocab::leftmost_longest(std::string_view s, const MatchSet& set, std::vector<Segment>& out) const {
  for (size_t i = 0; i < s.size();) {
    bool hit = false;
    for (size_t k : set.by_first_byte[static_cast<unsigned char>(s[i])]) {
      const std::string& c = tokens_[k].pattern;
      if (s.compare(i, c.size(), c) == 0) {
        out.push_back({i, i + c.size(), tokens_[k].id});
        i += c.size();
        hit = true;
        break;
      }
    }
    if (!hit) ++i;
  }
}

void AddedVocab::split(std::string_view s, bool normalized_set, std::vector<Segment>& out) const {
  const MatchSet& set = normalized_set ? normalized_ : raw_;
  if (s.empty() || set.empty) {
    out.push_back({0, s.size(), -1});
    return;
  }
  std::vector<Segment> matches;
  leftmost_longest(s, set, matches);
  // Mirrors AddedVocabulary::find_matches, including how stripping interacts with neighbours.
  size_t start_offset = 0;
  for (const Segment& m : matches) {
    size_t start = m.begin, stop = m.end;
    const AddedToken& t = *find_id(m.id);
    if (t.single_word) {
      const bool start_ok = start == 0 || !(unicode_flags(last_char(s.substr(0, start))) & kWord);
      const bool stop_ok = stop == s.size() || !(unicode_flags(decode_utf8(s, stop).cp) & kWord);
      if (!start_ok || !stop_ok) continue;
    }
    if (t.lstrip) {
      size_t ns = start;
      while (ns > 0) {
        size_t p = ns - 1;
        while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
        if (!is_space(decode_utf8(s, p).cp)) break;
        ns = p;
      }
      start = std::max(ns, start_offset);
    }
    if (t.rstrip) {
      while (stop < s.size()) {
        const DecodedChar d = decode_utf8(s, stop);
        if (!is_space(d.cp)) break;
        stop += d.len;
      }
    }
    if (start_offset < start) out.push_back({start_offset, start, -1});
    out.push_back({start, stop, m.id});
    start_offset = stop;
  }
  if (start_offset != s.size()) out.push_back({start_offset, s.size(), -1});
}

}  // namespace vlart::tok
