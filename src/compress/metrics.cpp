#include "compress/metrics.h"

#include <algorithm>
#include <cmath>

#include "vlart/error.h"

namespace vlart::compress {

namespace {
double cos_from(double dot, double na, double nb) {
  if (na == 0 && nb == 0) return 1;
  if (na == 0 || nb == 0) return 0;
  // sqrt(na * nb) (not sqrt(na) * sqrt(nb)): identical vectors give exactly 1.
  return std::clamp(dot / std::sqrt(na * nb), -1.0, 1.0);
}
}  // namespace

double cosine_similarity(const std::vector<float>& a, const std::vector<float>& b) {
  VLART_CHECK(a.size() == b.size(), InvalidArgument, "cosine_similarity: sizes ", a.size(), " and ", b.size());
  double dot = 0, na = 0, nb = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    dot += double(a[i]) * b[i];
    na += double(a[i]) * a[i];
    nb += double(b[i]) * b[i];
  }
  return cos_from(dot, na, nb);
}

ActionError action_error(const std::vector<std::vector<float>>& ref, const std::vector<std::vector<float>>& cand,
                         int64_t action_dim) {
  VLART_CHECK(ref.size() == cand.size() && !ref.empty(), InvalidArgument, "action_error: ", ref.size(),
              " reference chunks but ", cand.size(), " candidate chunks");
  VLART_CHECK(action_dim > 0, InvalidArgument, "action_error: action_dim ", action_dim);
  const size_t A = static_cast<size_t>(action_dim);
  ActionError e;
  e.dim_max_abs.assign(A, 0.0);
  std::vector<double> dim_err2(A, 0.0), dim_ref2(A, 0.0);
  double dot = 0, nr = 0, nc = 0, err2 = 0;
  for (size_t o = 0; o < ref.size(); ++o) {
    const std::vector<float>& r = ref[o];
    const std::vector<float>& c = cand[o];
    VLART_CHECK(r.size() == c.size() && r.size() % A == 0, InvalidArgument, "action_error: observation ", o,
                ": reference has ", r.size(), " values, candidate ", c.size(), " (action_dim ", action_dim, ")");
    e.min_cosine = std::min(e.min_cosine, cosine_similarity(r, c));
    for (size_t i = 0; i < r.size(); ++i) {
      const double d = double(c[i]) - r[i];
      dot += double(r[i]) * c[i];
      nr += double(r[i]) * r[i];
      nc += double(c[i]) * c[i];
      err2 += d * d;
      e.max_abs = std::max(e.max_abs, std::fabs(d));
      const size_t j = i % A;
      e.dim_max_abs[j] = std::max(e.dim_max_abs[j], std::fabs(d));
      dim_err2[j] += d * d;
      dim_ref2[j] += double(r[i]) * r[i];
    }
  }
  e.cosine = cos_from(dot, nr, nc);
  e.rel_l2 = nr > 0 ? std::sqrt(err2 / nr) : (err2 > 0 ? INFINITY : 0.0);
  e.dim_rel_l2.resize(A);
  for (size_t j = 0; j < A; ++j)
    e.dim_rel_l2[j] = dim_ref2[j] > 0 ? std::sqrt(dim_err2[j] / dim_ref2[j]) : (dim_err2[j] > 0 ? INFINITY : 0.0);
  return e;
}

}  // namespace vlart::compress
