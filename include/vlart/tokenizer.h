// Text tokenizer reading a Hugging Face `tokenizer.json`.
//
// Reproduces the `tokenizers` package's encode/decode for the BPE tokenizers VLA backbones ship:
// byte-level (GPT-2, SmolLM2 / SmolVLM2, Qwen2) and SentencePiece-converted (Gemma / PaliGemma,
// Llama-2, Metaspace-style Llama / Mistral conversions). Added tokens matched first (leftmost-longest,
// lstrip/rstrip/single_word; normalized ones on the normalized text, as their normalized content);
// normalizers Replace (string), Prepend, NFC, Sequence; pre-tokenizers ByteLevel (GPT-2 regex), Digits,
// Split (string, the GPT-2 or the Qwen2 regex), Metaspace (prepend_scheme always/first/never, split),
// Sequence; BPE model (merge ranks, ignore_merges, unk, fuse_unk, byte_fallback, subword
// prefix/suffix); ByteLevel and TemplateProcessing post-processors; decoders ByteLevel, ByteFallback,
// Fuse, Replace, Strip, Metaspace, Sequence. Anything else in the file (another model type such as
// Unigram, another normalizer or regex) is refused at load time with UnsupportedError naming the
// field, never silently mis-tokenized.
//
// A loaded Tokenizer is immutable; encode/decode are const and safe to call from several threads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vlart {

// Fixed-length encoding for model inputs: right padding with pad_id, right truncation.
struct PaddedEncoding {
  std::vector<int32_t> ids;             // exactly max_length entries
  std::vector<int32_t> attention_mask;  // 1 for real tokens, 0 for padding
};

class Tokenizer {
 public:
  // Throws IoError (cannot open/read), FormatError (malformed JSON or a field of the wrong type or
  // missing; the message names the file and the field), UnsupportedError (a valid feature this
  // implementation does not have; the message names the field and value).
  static Tokenizer from_file(const std::string& path);
  // Same, from the JSON text; `source_name` is used in error messages in place of the path.
  static Tokenizer from_json_string(const std::string& json_text,
                                    const std::string& source_name = "<tokenizer.json string>");

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // `text` must be valid UTF-8 (InvalidArgument otherwise). add_special_tokens applies the
  // post-processor (e.g. a BOS from TemplateProcessing); special tokens written in the text are
  // always recognised, as in `tokenizers`.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;

  // Ids outside the vocabulary throw InvalidArgument. Invalid UTF-8 produced by byte-level tokens
  // is replaced by U+FFFD exactly like Rust's String::from_utf8_lossy.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  // Encodes, truncates on the right so that the post-processed sequence fits max_length (the
  // special tokens of the post-processor are kept), then pads on the right with pad_id.
  PaddedEncoding encode_padded(std::string_view text, size_t max_length, int32_t pad_id,
                               bool add_special_tokens = true) const;

  // Added tokens take precedence over the model vocabulary, as in `tokenizers`.
  std::optional<int32_t> token_to_id(std::string_view token) const;
  std::optional<std::string> id_to_token(int32_t id) const;
  bool is_special_token(int32_t id) const;

  // Number of distinct tokens, model vocabulary plus added tokens not already in it
  // (`get_vocab_size(with_added_tokens=True)`).
  size_t vocab_size() const;
  // Largest id + 1: the row count an embedding table needs.
  size_t id_upper_bound() const;

  // Number of ids the post-processor adds to one sequence when add_special_tokens is true.
  size_t num_special_tokens_to_add() const;

 private:
  struct Impl;
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace vlart
