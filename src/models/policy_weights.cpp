#include "models/policy_weights.h"

#include <filesystem>

#include "vlart/error.h"

namespace vlart {
namespace fs = std::filesystem;

namespace {
bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}
}  // namespace

PolicyWeights PolicyWeights::open(const std::string& checkpoint_dir, const std::string& prefix, const std::string& tag) {
  PolicyWeights w;
  w.dir_ = checkpoint_dir;
  w.prefix_ = prefix;
  w.tag_ = tag;
  w.ckpt_ = SafetensorsCheckpoint::open(checkpoint_dir);
  const fs::path cfg = fs::path(checkpoint_dir) / "config.json";
  if (fs::is_directory(checkpoint_dir) && fs::exists(cfg)) w.quant_ = compress::read_quant_config(cfg.string());
  const std::string qs = compress::kQWeightSuffix;
  for (const std::string& n : w.ckpt_.names()) {
    std::string base;
    for (const char* suf : {compress::kQWeightSuffix, compress::kScalesSuffix, compress::kZerosSuffix,
                            compress::kInputScalesSuffix, compress::kActScaleSuffix})
      if (ends_with(n, suf)) base = n.substr(0, n.size() - std::string(suf).size());
    if (base.empty()) continue;
    const bool is_q = ends_with(n, qs);
    if (!is_q && !w.quant_) continue;  // an unrelated "*.scales" tensor of a float checkpoint
    const std::string file = w.ckpt_.file_of(n).path();
    VLART_CHECK(w.quant_.has_value(), FormatError, file, ": tensor '", n, "' is quantized but ", cfg.string(),
                " has no \"quantization\" section");
    VLART_CHECK(w.ckpt_.has(base + qs), FormatError, file, ": tensor '", n, "' has no quantized weight '", base, qs,
                "' beside it");
    if (!is_q) continue;
    VLART_CHECK(!w.ckpt_.has(base), FormatError, file, ": weight '", base, "' is stored both as float and as '", n,
                "'");
    SafetensorsTensorInfo li = w.ckpt_.info(n);
    li.name = base;
    li.shape = compress::validate_quantized(w.ckpt_, base, *w.quant_);
    li.dtype = DType::kF32;
    w.qinfo_[base] = li;
  }
  return w;
}

bool PolicyWeights::has(const std::string& name) const {
  const std::string full = prefix_ + name;
  return ckpt_.has(full) || qinfo_.count(full) != 0;
}

const SafetensorsTensorInfo& PolicyWeights::info(const std::string& name) const {
  const std::string full = prefix_ + name;
  auto it = qinfo_.find(full);
  if (it != qinfo_.end()) return it->second;
  VLART_CHECK(ckpt_.has(full), NotFoundError, tag_, ": tensor '", full, "' not in checkpoint ", dir_);
  return ckpt_.info(full);
}

Tensor PolicyWeights::get(const std::string& name, const Shape& shape) const {
  const SafetensorsTensorInfo& i = info(name);
  VLART_CHECK(shape.rank() == 0 || i.shape == shape, FormatError, tag_, ": tensor '", prefix_, name,
              "' in ", dir_, " has shape ", i.shape.str(), ", expected ", shape.str());
  if (qinfo_.count(prefix_ + name)) return compress::dequantize_weight(ckpt_, prefix_ + name, *quant_);
  return ckpt_.get(prefix_ + name);
}

std::shared_ptr<const QuantWeight> PolicyWeights::get_quant(const std::string& name, const Shape& shape) const {
  const std::string full = prefix_ + name;
  auto it = qinfo_.find(full);
  VLART_CHECK(it != qinfo_.end(), NotFoundError, tag_, ": tensor '", full, "' is not quantized in ", dir_);
  VLART_CHECK(shape.rank() == 0 || it->second.shape == shape, FormatError, tag_, ": tensor '", full, "' in ", dir_,
              " has shape ", it->second.shape.str(), ", expected ", shape.str());
  const compress::QuantScheme& sc = quant_->scheme;
  auto q = std::make_shared<QuantWeight>();
  q->kind = sc.kind == compress::Scheme::kInt4 ? QuantWeight::Kind::kInt4 : QuantWeight::Kind::kInt8;
  q->n = it->second.shape[0];
  q->k = it->second.shape[1];
  q->group = sc.kind == compress::Scheme::kInt4 ? sc.group_size : 0;
  q->symmetric = sc.symmetric;
  q->act_int8 = sc.act_int8;
  q->qweight = ckpt_.get(full + compress::kQWeightSuffix);
  q->scales = ckpt_.get(full + compress::kScalesSuffix);
  if (ckpt_.has(full + compress::kZerosSuffix)) {
    q->zeros = ckpt_.get(full + compress::kZerosSuffix);
    const uint8_t* z = q->zeros.data<uint8_t>();
    for (int64_t i = 0; i < q->zeros.numel(); ++i)
      VLART_CHECK(z[i] <= 15, FormatError, ckpt_.file_of(full + compress::kZerosSuffix).path(), ": tensor '", full,
                  compress::kZerosSuffix, "' holds zero point ", int(z[i]), " at index ", i,
                  ", expected a value in [0, 15]");
  }
  if (ckpt_.has(full + compress::kInputScalesSuffix)) q->input_scales = ckpt_.get(full + compress::kInputScalesSuffix);
  if (ckpt_.has(full + compress::kActScaleSuffix))
    q->act_scale = ckpt_.get(full + compress::kActScaleSuffix).data<float>()[0];
  return q;
}

}  // namespace vlart
