#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace vlart::tok {
namespace {

class JoinDecoder final : public Decoder {
 public:
  void chain(std::vector<std::string>&) const override {}
  std::string decode(std::vector<std::string> tokens) const override {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += tokens[i];
    }
    return out;
  }
};

class ByteLevelDecoder final : public Decoder {
 public:
  void chain(std::vector<std::string>& tokens) const override {
    std::string bytes, tok_bytes;
    for (const std::string& t : tokens) {
      tok_bytes.clear();
      bool all_mapped = true;
      for (size_t i = 0; i < t.size();) {
        const DecodedChar d = decode_utf8(t, i);
        const int b = char_to_byte(d.cp);
        if (b < 0) {
          all_mapped = false;
          break;
        }
        tok_bytes.push_back(static_cast<char>(b));
        i += d.len;
      }
      bytes += all_mapped ? tok_bytes : t;
    }
    tokens.assign(1, utf8_lossy(bytes));
  }
};

// "<0xAB>" -> 0xAB, else -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  int v = 0;
  for (int i = 3; i < 5; ++i) {
    const char c = t[static_cast<size_t>(i)];
    const int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

class ByteFallbackDecoder final : public Decoder {
 public:
  void chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t n_bytes = 0;
    auto flush = [&] {
      if (n_bytes == 0) return;
      if (find_invalid_utf8(bytes) == std::string::npos) {
        out.push_back(bytes);
      } else {
        for (size_t i = 0; i < n_bytes; ++i) out.emplace_back("\xEF\xBF\xBD");  // U+FFFD per byte token
      }
      bytes.clear();
      n_bytes = 0;
    };
    for (std::string& t : tokens) {
      const int b = byte_token(t);
      if (b >= 0) {
        bytes.push_back(static_cast<char>(b));
        ++n_bytes;
        continue;
      }
      flush();
      out.push_back(std::move(t));
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) replace_all(t, pattern_, content_);
  }

 private:
  std::string pattern_, content_;
};

// Removes up to `start` leading and `stop` trailing copies of one character from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop) : c_(std::move(content)), start_(start), stop_(stop) {}
  void chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t i = 0; i < start_ && t.compare(b, c_.size(), c_) == 0 && b + c_.size() <= e; ++i) b += c_.size();
      for (size_t i = 0; i < stop_ && e >= b + c_.size() && t.compare(e - c_.size(), c_.size(), c_) == 0; ++i)
        e -= c_.size();
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string c_;
  size_t start_, stop_;
};

// The replacement becomes a space, except in the first token (where the pre-tokenizer prepended
// it) unless prepend_scheme is "never".
class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void chain(std::vector<std::string>& tokens) const override {
    static const std::string kSpace = " ", kNothing;
    for (size_t i = 0; i < tokens.size(); ++i) replace_all(tokens[i], rep_, i == 0 && strip_first_ ? kNothing : kSpace);
  }

 private:
  std::string rep_;
  bool strip_first_;
};

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void chain(std::vector<std::string>& tokens) const override {
    for (const auto& d : steps_) d->chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

std::string one_char(const JsonCtx& ctx, const Json& j, const std::string& path, const char* key) {
  const std::string c = ctx.string_member(j, path, key);
  if (c.empty() || decode_utf8(c, 0).len != c.size())
    ctx.fail(JsonCtx::join(path, key), "must be one character, got '" + c + "'");
  return c;
}

size_t count_member(const JsonCtx& ctx, const Json& j, const std::string& path, const char* key) {
  const Json& v = ctx.member(j, path, key);
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    ctx.fail(JsonCtx::join(path, key), "must be a non-negative integer");
  return v.get<size_t>();
}

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const Json* j, const JsonCtx& ctx, const std::string& path) {
  if (!j) return std::make_unique<JoinDecoder>();
  const std::string type = ctx.string_member(*j, path, "type");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip")
    return std::make_unique<StripDecoder>(one_char(ctx, *j, path, "content"), count_member(ctx, *j, path, "start"),
                                          count_member(ctx, *j, path, "stop"));
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(ctx.replace_literal(*j, path), ctx.string_member(*j, path, "content"));
  if (type == "Metaspace") {
    bool strip_first = true;
    if (const Json* ps = ctx.optional(*j, "prepend_scheme")) {
      const std::string v = ctx.string_of(*ps, path + ".prepend_scheme");
      if (v != "always" && v != "first" && v != "never") ctx.fail(path + ".prepend_scheme", "has unknown value '" + v + "'");
      strip_first = v != "never";
    } else {
      strip_first = ctx.bool_member(*j, path, "add_prefix_space", true);
    }
    return std::make_unique<MetaspaceDecoder>(one_char(ctx, *j, path, "replacement"), strip_first);
  }
  if (type == "Sequence") {
    const Json& list = ctx.member(*j, path, "decoders");
    if (!list.is_array()) ctx.fail(path + ".decoders", "must be an array");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(parse_decoder(&list[i], ctx, path + ".decoders[" + std::to_string(i) + "]"));
    return std::make_unique<SequenceDecoder>(std::move(steps));
  }
  ctx.unsupported(path + ".type", "'" + type + "'");
}

}  // namespace vlart::tok
