/* kernels_rope.cpp - the rotary frequencies of kernels.h (rope_rotary_dim, rope_inv_freq), on the host.

   Every backend builds its cos/sin table from these values, so the frequencies, including Llama-3's
   wavelength-dependent rescaling, are computed once, in double, the way HF's rope initialisation
   functions describe them (default: 1 / theta^(2i/d); "llama3": keep high frequencies, divide low ones by
   `factor`, blend in between). */
#include "atp/kernels.h"

#include <cmath>
#include <string>

namespace atp {

Result<std::int64_t> rope_rotary_dim(const RopeConfig &cfg, std::int64_t head_dim) {
  if (head_dim <= 0)
    return error("rope: head_dim " + std::to_string(head_dim) + " must be positive");
  if (!(cfg.partial_rotary_factor > 0.0 && cfg.partial_rotary_factor <= 1.0))
    return error("rope: partial_rotary_factor " + std::to_string(cfg.partial_rotary_factor) +
                 " must be in (0, 1]");
  // HF: int(head_dim * partial_rotary_factor), truncating
  const auto dim = static_cast<std::int64_t>(static_cast<double>(head_dim) * cfg.partial_rotary_factor);
  if (dim < 2 || dim % 2 != 0)
    return error("rope: rotary dim " + std::to_string(dim) + " (head_dim " + std::to_string(head_dim) +
                 " x partial_rotary_factor " + std::to_string(cfg.partial_rotary_factor) +
                 ") must be even and at least 2");
  return dim;
}

Result<std::vector<double>> rope_inv_freq(const RopeConfig &cfg, std::int64_t head_dim) {
  ATP_ASSIGN_OR_RETURN(const std::int64_t dim, rope_rotary_dim(cfg, head_dim));
  if (!(cfg.theta > 1.0) || !std::isfinite(cfg.theta))
    return error("rope: rope_theta " + std::to_string(cfg.theta) + " must be finite and greater than 1");
  std::vector<double> inv(static_cast<std::size_t>(dim / 2));
  for (std::int64_t i = 0; i < dim / 2; ++i)
    inv[static_cast<std::size_t>(i)] =
        1.0 / std::pow(cfg.theta, static_cast<double>(2 * i) / static_cast<double>(dim));
  if (cfg.rope_type == "default")
    return inv;
  if (cfg.rope_type != "llama3")
    return error("rope: rope_scaling type '" + cfg.rope_type +
                 "' is not supported (supported: default, llama3)");

  const double factor = cfg.factor, low = cfg.low_freq_factor, high = cfg.high_freq_factor;
  const double old_len = cfg.original_max_position_embeddings;
  if (!(factor >= 1.0) || !(low > 0.0) || !(high > low) || !(old_len > 0.0) || !std::isfinite(factor) ||
      !std::isfinite(high) || !std::isfinite(old_len))
    return error("rope: llama3 rope_scaling needs factor >= 1, 0 < low_freq_factor < high_freq_factor and "
                 "original_max_position_embeddings > 0 (got factor " + std::to_string(factor) +
                 ", low_freq_factor " + std::to_string(low) + ", high_freq_factor " + std::to_string(high) +
                 ", original_max_position_embeddings " + std::to_string(old_len) + ")");
  const double pi = std::acos(-1.0);
  const double low_freq_wavelen = old_len / low, high_freq_wavelen = old_len / high;
  for (double &f : inv) {
    const double wavelen = 2.0 * pi / f;
    if (wavelen < high_freq_wavelen)
      continue;             // high frequency: unchanged
    if (wavelen > low_freq_wavelen) {
      f = f / factor;       // low frequency: interpolated by the full factor
      continue;
    }
    const double smooth = (old_len / wavelen - low) / (high - low);
    f = (1.0 - smooth) * f / factor + smooth * f;
  }
  return inv;
}

} // namespace atp
