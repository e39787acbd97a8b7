#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

#include "tokenizer/utf8.h"

namespace vlart::tok {

BpeModel::BpeModel(const Json& j, const JsonCtx& ctx, const std::string& path) {
  if (const Json* d = ctx.optional(j, "dropout")) {
    if (!d->is_number()) ctx.fail(path + ".dropout", "must be a number or null");
    // Dropout makes encoding random; an inference runtime wants the deterministic tokenizer.
    if (d->get<double>() != 0.0) ctx.unsupported(path + ".dropout", "= " + d->dump());
  }
  if (const Json* u = ctx.optional(j, "unk_token")) unk_token_ = ctx.string_of(*u, path + ".unk_token");
  if (const Json* p = ctx.optional(j, "continuing_subword_prefix"))
    continuing_subword_prefix_ = ctx.string_of(*p, path + ".continuing_subword_prefix");
  if (const Json* s = ctx.optional(j, "end_of_word_suffix"))
    end_of_word_suffix_ = ctx.string_of(*s, path + ".end_of_word_suffix");
  fuse_unk_ = ctx.bool_member(j, path, "fuse_unk", false);
  byte_fallback_ = ctx.bool_member(j, path, "byte_fallback", false);
  ignore_merges_ = ctx.bool_member(j, path, "ignore_merges", false);

  const Json& vocab = ctx.member(j, path, "vocab");
  if (!vocab.is_object()) ctx.fail(path + ".vocab", "must be an object {token: id}");
  vocab_.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) {
    const int32_t id = static_cast<int32_t>(ctx.id_of(it.value(), path + ".vocab[\"" + it.key() + "\"]"));
    vocab_[it.key()] = id;
    if (id > max_id_) max_id_ = id;
  }
  // Dense ids (every shipped file) index a vector; a file with ids far beyond its size (up to
  // INT32_MAX) gets a map instead of gigabytes of empty slots.
  if (static_cast<size_t>(max_id_) + 1 <= 4 * vocab_.size() + 4096) {
    vocab_r_.assign(static_cast<size_t>(max_id_ + 1), nullptr);
    for (const auto& kv : vocab_) vocab_r_[static_cast<size_t>(kv.second)] = &kv.first;
  } else {
    for (const auto& kv : vocab_) sparse_r_[kv.second] = &kv.first;
  }

  const Json& merges = ctx.member(j, path, "merges");
  if (!merges.is_array()) ctx.fail(path + ".merges", "must be an array");
  merges_.reserve(merges.size());
  const auto lookup = [&](const std::string& tok, const std::string& where) {
    auto it = vocab_.find(tok);
    if (it == vocab_.end()) ctx.fail(where, "names token '" + tok + "' that is not in " + path + ".vocab");
    return it->second;
  };
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string where = path + ".merges[" + std::to_string(i) + "]";
    const Json& m = merges[i];
    std::string a, b;
    if (m.is_string()) {  // legacy "a b" form
      const std::string s = m.get<std::string>();
      const size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        ctx.fail(where, "must be two tokens separated by one space, got '" + s + "'");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (m.is_array() && m.size() == 2) {
      a = ctx.string_of(m[0], where + "[0]");
      b = ctx.string_of(m[1], where + "[1]");
    } else {
      ctx.fail(where, "must be a string \"a b\" or a pair [a, b]");
    }
    const int32_t ia = lookup(a, where), ib = lookup(b, where);
    // The merged token drops the right side's continuing-subword prefix, as tokenizers' builder does.
    const size_t plen = continuing_subword_prefix_.size();
    if (b.size() < plen) ctx.fail(where, "right token is shorter than continuing_subword_prefix");
    const int32_t inew = lookup(a + b.substr(plen), where);
    merges_[pair_key(ia, ib)] = {static_cast<uint32_t>(i), inew};  // a repeated pair: the last one wins
  }
  if (unk_token_ && !vocab_.count(*unk_token_))
    ctx.fail(path + ".unk_token", "names '" + *unk_token_ + "' that is not in " + path + ".vocab");
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const {
  auto it = vocab_.find(std::string(token));
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

const std::string* BpeModel::id_to_token(int32_t id) const {
  if (!sparse_r_.empty()) {
    auto it = sparse_r_.find(id);
    return it == sparse_r_.end() ? nullptr : it->second;
  }
  if (id < 0 || static_cast<size_t>(id) >= vocab_r_.size()) return nullptr;
  return vocab_r_[static_cast<size_t>(id)];
}

void BpeModel::tokenize(std::string_view piece, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  std::string key(piece);
  if (ignore_merges_) {
    auto it = vocab_.find(key);
    if (it != vocab_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  // Initial symbols: one per character (with prefix/suffix decoration), unknowns via byte
  // fallback or the unk token, exactly like tokenizers' BPE::merge_word.
  std::vector<int32_t> ids;
  ids.reserve(piece.size());
  std::optional<int32_t> pending_unk;
  const int32_t unk_id = unk_token_ ? vocab_.at(*unk_token_) : -1;
  std::string sym;
  for (size_t i = 0; i < piece.size();) {
    const size_t len = decode_utf8(piece, i).len;
    const bool first = i == 0, last = i + len == piece.size();
    sym.clear();
    if (!first) sym += continuing_subword_prefix_;
    sym.append(piece.substr(i, len));
    if (last) sym += end_of_word_suffix_;
    i += len;
    auto it = vocab_.find(sym);
    if (it != vocab_.end()) {
      if (pending_unk) ids.push_back(*pending_unk);
      pending_unk.reset();
      ids.push_back(it->second);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      char name[8];
      for (unsigned char c : sym) {
        std::snprintf(name, sizeof(name), "<0x%02X>", c);
        auto bt = vocab_.find(name);
        if (bt == vocab_.end()) break;
        bytes.push_back(bt->second);
      }
      if (bytes.size() == sym.size()) {
        // tokenizers leaves a pending unk in place here and flushes it later, after these bytes.
        ids.insert(ids.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    if (unk_token_) {
      if (pending_unk && !fuse_unk_) ids.push_back(*pending_unk);
      pending_unk = unk_id;
    }
  }
  if (pending_unk) ids.push_back(*pending_unk);
  merge_all(ids, out);
}

void BpeModel::merge_all(std::vector<int32_t>& ids, std::vector<int32_t>& out) const {
  // Doubly linked symbols and a min-heap of (rank, position): always apply the lowest-rank merge,
  // leftmost first; stale heap entries are detected and skipped (O(n log n) per word).
  const int n = static_cast<int>(ids.size());
  std::vector<int> prev(n), next(n);
  std::vector<char> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    uint32_t rank;
    int pos;
    int32_t new_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  const auto push = [&](int pos) {
    if (pos < 0 || next[pos] < 0) return;
    auto it = merges_.find(pair_key(ids[pos], ids[next[pos]]));
    if (it != merges_.end()) heap.push({it->second.rank, pos, it->second.new_id});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    if (!alive[c.pos] || next[c.pos] < 0) continue;
    const int right = next[c.pos];
    auto it = merges_.find(pair_key(ids[c.pos], ids[right]));
    if (it == merges_.end() || it->second.new_id != c.new_id) continue;  // stale entry
    ids[c.pos] = c.new_id;
    alive[right] = 0;
    next[c.pos] = next[right];
    if (next[right] >= 0) prev[next[right]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  for (int i = 0; i < n; ++i)
    if (alive[i]) out.push_back(ids[i]);
}

}  // namespace vlart::tok
