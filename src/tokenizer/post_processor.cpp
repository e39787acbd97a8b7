#include "tokenizer/post_processor.h"

namespace vlart::tok {
namespace {

class Identity final : public PostProcessor {
 public:
  void apply(std::vector<int32_t>&) const override {}
  size_t added() const override { return 0; }
};

// The single-sequence template: special-token ids around the sequence "$A".
class Template final : public PostProcessor {
 public:
  Template(std::vector<int32_t> before, std::vector<int32_t> after)
      : before_(std::move(before)), after_(std::move(after)) {}
  void apply(std::vector<int32_t>& ids) const override {
    ids.insert(ids.begin(), before_.begin(), before_.end());
    ids.insert(ids.end(), after_.begin(), after_.end());
  }
  size_t added() const override { return before_.size() + after_.size(); }

 private:
  std::vector<int32_t> before_, after_;
};

class Chain final : public PostProcessor {
 public:
  explicit Chain(std::vector<std::unique_ptr<PostProcessor>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<int32_t>& ids) const override {
    for (const auto& s : steps_) s->apply(ids);
  }
  size_t added() const override {
    size_t n = 0;
    for (const auto& s : steps_) n += s->added();
    return n;
  }

 private:
  std::vector<std::unique_ptr<PostProcessor>> steps_;
};

std::unique_ptr<PostProcessor> parse_template(const Json& j, const JsonCtx& ctx, const std::string& path) {
  const Json& single = ctx.member(j, path, "single");
  if (!single.is_array()) ctx.fail(path + ".single", "must be an array");
  const Json& specials = ctx.member(j, path, "special_tokens");
  std::vector<int32_t> before, after;
  bool seen_sequence = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const std::string where = path + ".single[" + std::to_string(i) + "]";
    const Json& piece = single[i];
    if (const Json* seq = ctx.optional(piece, "Sequence")) {
      const std::string id = ctx.string_member(*seq, where + ".Sequence", "id");
      if (id != "A") ctx.fail(where + ".Sequence.id", "must be 'A' in the single template, got '" + id + "'");
      if (seen_sequence) ctx.unsupported(where, "(a second $A)");
      seen_sequence = true;
    } else if (const Json* sp = ctx.optional(piece, "SpecialToken")) {
      const std::string name = ctx.string_member(*sp, where + ".SpecialToken", "id");
      const Json& entry = ctx.member(specials, path + ".special_tokens", name.c_str());
      const std::string epath = path + ".special_tokens." + name;
      const Json& ids = ctx.member(entry, epath, "ids");
      if (!ids.is_array()) ctx.fail(epath + ".ids", "must be an array");
      for (size_t k = 0; k < ids.size(); ++k) {
        const int32_t id = static_cast<int32_t>(ctx.id_of(ids[k], epath + ".ids[" + std::to_string(k) + "]"));
        (seen_sequence ? after : before).push_back(id);
      }
    } else {
      ctx.fail(where, "must hold 'Sequence' or 'SpecialToken'");
    }
  }
  if (!seen_sequence) ctx.fail(path + ".single", "has no $A sequence");
  return std::make_unique<Template>(std::move(before), std::move(after));
}

}  // namespace

std::unique_ptr<PostProcessor> parse_post_processor(const Json* j, const JsonCtx& ctx, const std::string& path) {
  if (!j) return std::make_unique<Identity>();
  const std::string type = ctx.string_member(*j, path, "type");
  if (type == "ByteLevel") return std::make_unique<Identity>();  // only trims offsets, which we do not expose
  if (type == "TemplateProcessing") return parse_template(*j, ctx, path);
  if (type == "Sequence") {
    const Json& list = ctx.member(*j, path, "processors");
    if (!list.is_array()) ctx.fail(path + ".processors", "must be an array");
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(parse_post_processor(&list[i], ctx, path + ".processors[" + std::to_string(i) + "]"));
    return std::make_unique<Chain>(std::move(steps));
  }
  ctx.unsupported(path + ".type", "'" + type + "'");
}

}  // namespace vlart::tok
