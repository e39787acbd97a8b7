#include "tokenizer/decoder.h"

#include "tokenizer/byte_level.h"
#include "tokenizer/utf8.h"

namespace vlart::tok {
namespace {

class JoinDecoder final : public Decoder {
 public:
  std::string decode(const std::vector<const std::string*>& tokens) const override {
    std::string out;
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (i) out += ' ';
      out += *tokens[i];
    }
    return out;
  }
};

class ByteLevelDecoder final : public Decoder {
 public:
  std::string decode(const std::vector<const std::string*>& tokens) const override {
    std::string bytes, tok_bytes;
    for (const std::string* t : tokens) {
      tok_bytes.clear();
      bool all_mapped = true;
      for (size_t i = 0; i < t->size();) {
        const DecodedChar d = decode_utf8(*t, i);
        const int b = char_to_byte(d.cp);
        if (b < 0) {
          all_mapped = false;
          break;
        }
        tok_bytes.push_back(static_cast<char>(b));
        i += d.len;
      }
      bytes += all_mapped ? tok_bytes : *t;
    }
    return utf8_lossy(bytes);
  }
};

}  // namespace

std::unique_ptr<Decoder> parse_decoder(const Json* j, const JsonCtx& ctx, const std::string& path) {
  if (!j) return std::make_unique<JoinDecoder>();
  const std::string type = ctx.string_member(*j, path, "type");
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  ctx.unsupported(path + ".type", "'" + type + "'");
}

}  // namespace vlart::tok
