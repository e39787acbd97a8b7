// vlart::Tokenizer: loads tokenizer.json and runs the tokenizers pipeline
//   added tokens -> normalizer -> normalized added tokens -> pre-tokenizer -> BPE -> post-processor
// and the reverse for decode.
#include "vlart/tokenizer.h"

#include <fstream>
#include <sstream>

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe_model.h"
#include "tokenizer/decoder.h"
#include "tokenizer/json_fields.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/post_processor.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"
#include "vlart/error.h"

namespace vlart {

using tok::Json;
using tok::JsonCtx;

struct Tokenizer::Impl {
  tok::AddedVocab added;
  std::unique_ptr<tok::Normalizer> norm;  // null: none
  std::unique_ptr<tok::PreTokenizer> pre;
  std::unique_ptr<tok::BpeModel> model;
  std::unique_ptr<tok::PostProcessor> post;
  std::unique_ptr<tok::Decoder> decoder;
  size_t vocab_size = 0;
  size_t id_upper_bound = 0;

  void encode_plain(std::string_view text, std::vector<int32_t>& out) const;
};

namespace {

std::unique_ptr<tok::BpeModel> parse_model(const Json& root, const JsonCtx& ctx) {
  const Json& m = ctx.member(root, "", "model");
  std::string type;
  if (const Json* t = ctx.optional(m, "type")) {
    type = ctx.string_of(*t, "model.type");
  } else if (m.is_object() && m.contains("merges")) {
    type = "BPE";  // old files leave the type out; tokenizers infers BPE from the merges
  } else {
    ctx.fail("model.type", "is missing");
  }
  if (type != "BPE") ctx.unsupported("model.type", "'" + type + "'");
  return std::make_unique<tok::BpeModel>(m, ctx, "model");
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError("tokenizer.json '" + path + "': cannot open file");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw IoError("tokenizer.json '" + path + "': read failed");
  return from_json_string(ss.str(), path);
}

Tokenizer Tokenizer::from_json_string(const std::string& json_text, const std::string& source_name) {
  const JsonCtx ctx{source_name};
  Json root;
  try {
    root = Json::parse(json_text);
  } catch (const nlohmann::json::parse_error& e) {
    throw FormatError("tokenizer.json '" + source_name + "': malformed JSON: " + e.what());
  }
  if (!root.is_object()) ctx.fail("(root)", "must be a JSON object");

  // Encode-time truncation/padding stored in the file would change encode(); refuse rather than ignore.
  if (ctx.optional(root, "truncation")) ctx.unsupported("truncation", "(non-null)");
  if (ctx.optional(root, "padding")) ctx.unsupported("padding", "(non-null)");
  auto impl = std::make_unique<Impl>();
  impl->norm = tok::parse_normalizer(ctx.optional(root, "normalizer"), ctx, "normalizer");
  impl->model = parse_model(root, ctx);
  impl->added.parse(ctx.optional(root, "added_tokens"), ctx, *impl->model, impl->norm.get());
  impl->pre = tok::parse_pre_tokenizer(ctx.optional(root, "pre_tokenizer"), ctx, "pre_tokenizer");
  impl->post = tok::parse_post_processor(ctx.optional(root, "post_processor"), ctx, "post_processor");
  impl->decoder = tok::parse_decoder(ctx.optional(root, "decoder"), ctx, "decoder");

  size_t overlapping = 0;
  int64_t max_id = impl->model->max_id();
  for (const tok::AddedToken& t : impl->added.tokens()) {
    if (impl->model->token_to_id(t.content)) ++overlapping;
    if (t.id > max_id) max_id = t.id;
  }
  impl->vocab_size = impl->model->size() + impl->added.tokens().size() - overlapping;
  impl->id_upper_bound = static_cast<size_t>(max_id + 1);
  return Tokenizer(std::move(impl));
}

void Tokenizer::Impl::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  // 1. Added tokens with normalized=false on the raw text, 2. the normalizer on each segment left,
  // 3. the normalized added tokens on its result, 4. pre-tokenize and BPE each remaining piece.
  std::vector<tok::Segment> raw, sub;
  std::vector<std::string> pieces;
  std::string normed;
  added.split(text, false, raw);
  for (const tok::Segment& r : raw) {
    if (r.id >= 0) {
      out.push_back(r.id);
      continue;
    }
    normed.assign(text.substr(r.begin, r.end - r.begin));
    if (norm) norm->apply(normed);
    sub.clear();
    added.split(normed, true, sub);
    for (const tok::Segment& s : sub) {
      if (s.id >= 0) {
        out.push_back(s.id);
        continue;
      }
      if (s.end == s.begin) continue;
      pieces.clear();
      pieces.emplace_back(normed.substr(s.begin, s.end - s.begin));
      pre->apply(pieces, r.begin == 0 && s.begin == 0);
      for (const std::string& p : pieces) model->tokenize(p, out);
    }
  }
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special_tokens) const {
  const size_t bad = tok::find_invalid_utf8(text);
  VLART_CHECK(bad == std::string_view::npos, InvalidArgument,
              "Tokenizer::encode: text is not valid UTF-8 (byte offset ", bad, ")");
  std::vector<int32_t> ids;
  impl_->encode_plain(text, ids);
  if (add_special_tokens) impl_->post->apply(ids);
  return ids;
}

PaddedEncoding Tokenizer::encode_padded(std::string_view text, size_t max_length, int32_t pad_id,
                                        bool add_special_tokens) const {
  VLART_CHECK(max_length > 0, InvalidArgument, "Tokenizer::encode_padded: max_length must be > 0");
  const size_t extra = add_special_tokens ? impl_->post->added() : 0;
  VLART_CHECK(extra <= max_length, InvalidArgument, "Tokenizer::encode_padded: max_length ", max_length,
              " cannot hold the ", extra, " special tokens the post-processor adds");
  std::vector<int32_t> ids = encode(text, false);
  // tokenizers truncates the sequence to leave room for the template's tokens, then applies it.
  if (ids.size() > max_length - extra) ids.resize(max_length - extra);
  if (add_special_tokens) impl_->post->apply(ids);
  PaddedEncoding enc;
  enc.attention_mask.assign(ids.size(), 1);
  enc.ids = std::move(ids);
  enc.ids.resize(max_length, pad_id);
  enc.attention_mask.resize(max_length, 0);
  return enc;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    const int32_t id = ids[i];
    if (const tok::AddedToken* t = impl_->added.find_id(id)) {
      if (!(skip_special_tokens && t->special)) tokens.push_back(t->content);
      continue;
    }
    const std::string* s = impl_->model->id_to_token(id);
    VLART_CHECK(s != nullptr, InvalidArgument, "Tokenizer::decode: id ", id, " at position ", i,
                " is not in the vocabulary (id upper bound ", impl_->id_upper_bound, ")");
    // tokenizers skips by content: a model token spelled like a special added token is skipped too.
    if (skip_special_tokens) {
      const auto added_id = impl_->added.find_content(*s);
      if (added_id && impl_->added.find_id(*added_id)->special) continue;
    }
    tokens.push_back(*s);
  }
  return impl_->decoder->decode(std::move(tokens));
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  if (auto id = impl_->added.find_content(token)) return id;
  return impl_->model->token_to_id(token);
}

std::optional<std::string> Tokenizer::id_to_token(int32_t id) const {
  if (const tok::AddedToken* t = impl_->added.find_id(id)) return t->content;
  if (const std::string* s = impl_->model->id_to_token(id)) return *s;
  return std::nullopt;
}

bool Tokenizer::is_special_token(int32_t id) const {
  const tok::AddedToken* t = impl_->added.find_id(id);
  return t && t->special;
}

size_t Tokenizer::vocab_size() const { return impl_->vocab_size; }
size_t Tokenizer::id_upper_bound() const { return impl_->id_upper_bound; }
size_t Tokenizer::num_special_tokens_to_add() const { return impl_->post->added(); }

}  // namespace vlart
