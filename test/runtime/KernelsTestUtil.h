/* Helpers shared by the CPU kernel tests (kernels.h): seeded random tensors, float <-> double copies,
   the F32 and F64 kernel objects, comparisons with a named first mismatch, and a float64 central
   finite-difference check of a gradient. Host memory is the CPU backend's memory, so std::vector data()
   pointers are passed straight to the kernels. */
#pragma once

#include "atp/kernels.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace atp_kt {

using i64 = std::int64_t;
using Vec = std::vector<double>;

inline Vec random_vec(std::size_t n, std::uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  Vec v(n);
  for (double &x : v)
    x = dist(rng);
  return v;
}

inline std::vector<float> to_float(const Vec &v) { return std::vector<float>(v.begin(), v.end()); }
inline Vec to_double(const std::vector<float> &v) { return Vec(v.begin(), v.end()); }

inline std::unique_ptr<atp::Kernels> kernels(atp::DType dtype) {
  auto k = atp::make_cpu_kernels(dtype);
  if (!k.ok()) {
    ADD_FAILURE() << k.status().message();
    return nullptr;
  }
  return std::move(k).value();
}

/// Every |got - want| <= abs + rel * |want|; reports the first element that is not.
template <class A, class B>
::testing::AssertionResult near_all(const A &got, const B &want, double rel, double abs) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "size " << got.size() << " != " << want.size();
  for (std::size_t i = 0; i < got.size(); ++i) {
    const double g = double(got[i]), w = double(want[i]);
    if (!(std::fabs(g - w) <= abs + rel * std::fabs(w)))
      return ::testing::AssertionFailure() << "element " << i << ": got " << g << ", want " << w << " (diff "
                                           << std::fabs(g - w) << ")";
  }
  return ::testing::AssertionSuccess();
}

/// Sum of a[i] * b[i]: the scalar loss L = <R, out> whose gradient with respect to out is R.
inline double dot(const Vec &a, const Vec &b) {
  double s = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

/// Checks `analytic` (dL/dx) against central differences (L(x + h e_i) - L(x - h e_i)) / 2h, h = 1e-6,
/// over every element of x (up to max_checks of them, evenly spread). `loss` reads x.
inline ::testing::AssertionResult grad_check(Vec &x, const Vec &analytic, const std::function<double()> &loss,
                                             double tol = 1e-6, std::size_t max_checks = 1200) {
  if (x.size() != analytic.size())
    return ::testing::AssertionFailure() << "gradient size " << analytic.size() << " != input size " << x.size();
  const double h = 1e-6;
  const std::size_t step = x.size() > max_checks ? (x.size() + max_checks - 1) / max_checks : 1;
  double max_abs = 0.0;
  for (double a : analytic)
    max_abs = std::max(max_abs, std::fabs(a));
  for (std::size_t i = 0; i < x.size(); i += step) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double fd = (up - down) / (2 * h);
    if (!(std::fabs(fd - analytic[i]) <= tol * std::max(1.0, max_abs)))
      return ::testing::AssertionFailure() << "element " << i << ": analytic " << analytic[i] << ", finite difference "
                                           << fd << " (scale " << max_abs << ")";
  }
  if (max_abs == 0.0)
    return ::testing::AssertionFailure() << "the analytic gradient is all zeros: the check cannot fail";
  return ::testing::AssertionSuccess();
}

/// The error message of a failed Status, or "" when it is ok (so EXPECT_NE(..., "") and HasSubstr both read).
inline std::string err(const atp::Status &s) { return s.ok() ? "" : s.message(); }

} // namespace atp_kt
