#include "tokenizer/pre_tokenizer.h"

#include <string_view>

#include "tokenizer/byte_level.h"
#include "tokenizer/unicode_classes.h"
#include "tokenizer/utf8.h"

namespace vlart::tok {
namespace {

constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

enum class SplitRegex { kNone, kGpt2, kQwen2 };

enum class Behavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

// Turns the match/non-match segments of one piece into sub-pieces per `behavior`
// (tokenizers' NormalizedString::split).
void split_by(std::string_view piece, const std::vector<Span>& spans, Behavior behavior,
              std::vector<std::string>& out) {
  struct Part {
    size_t begin, end;
    bool remove;
  };
  std::vector<Part> parts;
  parts.reserve(spans.size());
  switch (behavior) {
    case Behavior::kIsolated:
      for (const Span& s : spans) parts.push_back({s.begin, s.end, false});
      break;
    case Behavior::kRemoved:
      for (const Span& s : spans) parts.push_back({s.begin, s.end, s.is_match});
      break;
    case Behavior::kContiguous: {
      bool prev = false;
      for (const Span& s : spans) {
        if (s.is_match == prev && !parts.empty()) {
          parts.back().end = s.end;
        } else {
          parts.push_back({s.begin, s.end, false});
        }
        prev = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithPrevious: {
      bool prev = false;
      for (const Span& s : spans) {
        if (s.is_match && !prev && !parts.empty()) {
          parts.back().end = s.end;
        } else {
          parts.push_back({s.begin, s.end, false});
        }
        prev = s.is_match;
      }
      break;
    }
    case Behavior::kMergedWithNext: {
      bool prev = false;
      for (size_t i = spans.size(); i-- > 0;) {
        const Span& s = spans[i];
        if (s.is_match && !prev && !parts.empty()) {
          parts.back().begin = s.begin;
        } else {
          parts.push_back({s.begin, s.end, false});
        }
        prev = s.is_match;
      }
      std::vector<Part> rev(parts.rbegin(), parts.rend());
      parts.swap(rev);
      break;
    }
  }
  for (const Part& p : parts) {
    if (!p.remove && p.end > p.begin) out.emplace_back(piece.substr(p.begin, p.end - p.begin));
  }
}

// Spans for a per-character predicate (tokenizers' Pattern for Fn(char) -> bool).
template <typename Pred>
void spans_by_char(std::string_view s, Pred pred, std::vector<Span>& out) {
  size_t last = 0;
  for (size_t i = 0; i < s.size();) {
    const DecodedChar d = decode_utf8(s, i);
    if (pred(d.cp)) {
      if (last < i) out.push_back({last, i, false});
      out.push_back({i, i + d.len, true});
      last = i + d.len;
    }
    i += d.len;
  }
  if (last < s.size()) out.push_back({last, s.size(), false});
}

// Turns a list of matches (without gaps filled) into covering spans.
void fill_gaps(size_t size, const std::vector<Span>& matches, std::vector<Span>& out) {
  size_t prev = 0;
  for (const Span& m : matches) {
    if (prev != m.begin) out.push_back({prev, m.begin, false});
    out.push_back({m.begin, m.end, true});
    prev = m.end;
  }
  if (prev != size) out.push_back({prev, size, false});
}

class ByteLevelPre final : public PreTokenizer {
 public:
  ByteLevelPre(bool add_prefix_space, bool use_regex) : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void apply(std::vector<std::string>& pieces, bool /*at_start*/) const override {
    std::vector<std::string> out;
    std::vector<Span> spans;
    for (std::string& p : pieces) {
      if (add_prefix_space_ && (p.empty() || p[0] != ' ')) p.insert(p.begin(), ' ');
      if (!use_regex_) {
        out.push_back(byte_level_encode(p));
        continue;
      }
      spans.clear();
      gpt2_split(p, spans);
      for (const Span& s : spans) out.push_back(byte_level_encode(std::string_view(p).substr(s.begin, s.end - s.begin)));
    }
    pieces.swap(out);
  }
  bool byte_level() const override { return true; }

 private:
  bool add_prefix_space_, use_regex_;
};

class DigitsPre final : public PreTokenizer {
 public:
  explicit DigitsPre(bool individual) : individual_(individual) {}
  void apply(std::vector<std::string>& pieces, bool /*at_start*/) const override {
    std::vector<std::string> out;
    std::vector<Span> spans;
    for (const std::string& p : pieces) {
      spans.clear();
      spans_by_char(p, [](char32_t c) { return (unicode_flags(c) & kNumeric) != 0; }, spans);
      split_by(p, spans, individual_ ? Behavior::kIsolated : Behavior::kContiguous, out);
    }
    pieces.swap(out);
  }

 private:
  bool individual_;
};

// Split with a literal string or one of the regexes this runtime implements by hand.
class SplitPre final : public PreTokenizer {
 public:
  SplitPre(std::string literal, SplitRegex regex, Behavior behavior, bool invert)
      : literal_(std::move(literal)), regex_(regex), behavior_(behavior), invert_(invert) {}
  void apply(std::vector<std::string>& pieces, bool /*at_start*/) const override {
    std::vector<std::string> out;
    std::vector<Span> matches, spans;
    for (const std::string& p : pieces) {
      spans.clear();
      if (regex_ == SplitRegex::kGpt2) {
        gpt2_split(p, spans);  // the alternatives cover the text: every span is a match
      } else if (regex_ == SplitRegex::kQwen2) {
        qwen2_split(p, spans);
      } else {
        matches.clear();
        {
          for (size_t pos = p.find(literal_); pos != std::string::npos; pos = p.find(literal_, pos + literal_.size()))
            matches.push_back({pos, pos + literal_.size(), true});
        }
        fill_gaps(p.size(), matches, spans);
      }
      if (invert_)
        for (Span& s : spans) s.is_match = !s.is_match;
      split_by(p, spans, behavior_, out);
    }
    pieces.swap(out);
  }

 private:
  std::string literal_;
  SplitRegex regex_;
  Behavior behavior_;
  bool invert_;
};

class SequencePre final : public PreTokenizer {
 public:
  explicit SequencePre(std::vector<std::unique_ptr<PreTokenizer>> steps) : steps_(std::move(steps)) {}
  void apply(std::vector<std::string>& pieces, bool at_start) const override {
    for (const auto& s : steps_) s->apply(pieces, at_start);
  }
  bool byte_level() const override {
    for (const auto& s : steps_)
      if (s->byte_level()) return true;
    return false;
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

// Spaces become the replacement character (U+2581 in every shipped file), a replacement is
// prepended per prepend_scheme (always; first: only to the segment at the start of the input; never)
// unless the piece already starts with one, and with `split` each replacement starts a new piece.
class MetaspacePre final : public PreTokenizer {
 public:
  enum class Prepend { kAlways, kFirst, kNever };
  MetaspacePre(std::string rep, Prepend scheme, bool split) : rep_(std::move(rep)), scheme_(scheme), split_(split) {}
  void apply(std::vector<std::string>& pieces, bool at_start) const override {
    std::vector<std::string> out;
    std::vector<Span> matches, spans;
    for (size_t i = 0; i < pieces.size(); ++i) {
      std::string p;
      for (char c : pieces[i]) {
        if (c == ' ')
          p += rep_;
        else
          p += c;
      }
      const bool starts = p.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == Prepend::kAlways || (scheme_ == Prepend::kFirst && at_start && i == 0)))
        p.insert(0, rep_);
      if (!split_) {
        if (!p.empty()) out.push_back(std::move(p));
        continue;
      }
      matches.clear();
      spans.clear();
      for (size_t pos = p.find(rep_); pos != std::string::npos; pos = p.find(rep_, pos + rep_.size()))
        matches.push_back({pos, pos + rep_.size(), true});
      fill_gaps(p.size(), matches, spans);
      split_by(p, spans, Behavior::kMergedWithNext, out);
    }
    pieces.swap(out);
  }

 private:
  std::string rep_;
  Prepend scheme_;
  bool split_;
};

class NoPre final : public PreTokenizer {
 public:
  void apply(std::vector<std::string>&, bool) const override {}
};

Behavior parse_behavior(const Json& j, const JsonCtx& ctx, const std::string& path) {
  const std::string b = ctx.string_member(j, path, "behavior");
  if (b == "Removed") return Behavior::kRemoved;
  if (b == "Isolated") return Behavior::kIsolated;
  if (b == "MergedWithPrevious") return Behavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return Behavior::kMergedWithNext;
  if (b == "Contiguous") return Behavior::kContiguous;
  ctx.fail(path + ".behavior", "has unknown value '" + b + "'");
}

}  // namespace

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const Json* j, const JsonCtx& ctx, const std::string& path) {
  if (!j) return std::make_unique<NoPre>();
  const std::string type = ctx.string_member(*j, path, "type");
  if (type == "ByteLevel") {
    return std::make_unique<ByteLevelPre>(ctx.bool_member(*j, path, "add_prefix_space", true),
                                          ctx.bool_member(*j, path, "use_regex", true));
  }
  if (type == "Digits") return std::make_unique<DigitsPre>(ctx.bool_member(*j, path, "individual_digits", false));
  if (type == "Split") {
    const Json& pat = ctx.member(*j, path, "pattern");
    const Behavior behavior = parse_behavior(*j, ctx, path);
    const bool invert = ctx.bool_member(*j, path, "invert", false);
    if (const Json* s = ctx.optional(pat, "String")) {
      std::string lit = ctx.string_of(*s, path + ".pattern.String");
      // An empty pattern matches between every character in the regex engine; nobody ships it.
      if (lit.empty()) ctx.unsupported(path + ".pattern.String", "'' (empty)");
      return std::make_unique<SplitPre>(std::move(lit), SplitRegex::kNone, behavior, invert);
    }
    if (const Json* r = ctx.optional(pat, "Regex")) {
      const std::string re = ctx.string_of(*r, path + ".pattern.Regex");
      const SplitRegex which = re == kGpt2Pattern ? SplitRegex::kGpt2 : re == kQwen2Pattern ? SplitRegex::kQwen2 : SplitRegex::kNone;
      if (which == SplitRegex::kNone) ctx.unsupported(path + ".pattern.Regex", "'" + re + "'");
      return std::make_unique<SplitPre>(std::string(), which, behavior, invert);
    }
    ctx.fail(path + ".pattern", "must hold 'String' or 'Regex'");
  }
  if (type == "Metaspace") {
    const std::string rep = ctx.string_member(*j, path, "replacement");
    if (rep.empty() || decode_utf8(rep, 0).len != rep.size())
      ctx.fail(path + ".replacement", "must be one character, got '" + rep + "'");
    MetaspacePre::Prepend scheme = MetaspacePre::Prepend::kAlways;
    if (const Json* ps = ctx.optional(*j, "prepend_scheme")) {
      const std::string v = ctx.string_of(*ps, path + ".prepend_scheme");
      if (v == "always") scheme = MetaspacePre::Prepend::kAlways;
      else if (v == "first") scheme = MetaspacePre::Prepend::kFirst;
      else if (v == "never") scheme = MetaspacePre::Prepend::kNever;
      else ctx.fail(path + ".prepend_scheme", "has unknown value '" + v + "'");
    } else if (!ctx.bool_member(*j, path, "add_prefix_space", true)) {
      scheme = MetaspacePre::Prepend::kNever;  // files older than prepend_scheme
    }
    return std::make_unique<MetaspacePre>(rep, scheme, ctx.bool_member(*j, path, "split", true));
  }
  if (type == "Sequence") {
    const Json& list = ctx.member(*j, path, "pretokenizers");
    if (!list.is_array()) ctx.fail(path + ".pretokenizers", "must be an array");
    std::vector<std::unique_ptr<PreTokenizer>> steps;
    for (size_t i = 0; i < list.size(); ++i)
      steps.push_back(parse_pre_tokenizer(&list[i], ctx, path + ".pretokenizers[" + std::to_string(i) + "]"));
    return std::make_unique<SequencePre>(std::move(steps));
  }
  ctx.unsupported(path + ".type", "'" + type + "'");
}

}  // namespace vlart::tok
