/* ops_cuda_test.cu - every method of the CUDA ops (make_cuda_ops) equals the CPU ops (make_cpu_ops).

   Fresh inputs from a seeded generator for each case, at sizes 0, 1, 7, ..., 2^20 + 3 (odd tails, one element
   past and before whole vectors) and at buffers 0 or 1 element past 16-byte alignment, and with the arrays
   of one call at different alignments (the one-element-per-thread path). Every device output sits between
   poisoned guard bytes, poisoned again before each run: bytes the call must not touch are checked as well.
     - cast (all 9 pairs of F32, BF16, F16, from random bits, ties, specials: NaN payloads, infs, subnormals,
       the f16 overflow edge), accumulate and AdamW (F32, BF16 or F16 gradients, with and without a BF16,
       F16 or F32 copy, both weight decay modes, gradients that square to subnormals) must give the same
       bytes (memcmp);
     - grad_stats' sum of squares over many spans (empty, overlapping, crossing blocks, some outside the
       norm) of F32, BF16 and F16 elements agrees with a long double sum to max(1e-12, terms * 2^-53)
       relative, the bound of any summation order in double (the CPU's as well), and gives the same bits when
       run twice;
     - grad_stats' nonfinite flag finds an inf or a NaN at the first, middle and last element, inside the
       norm's spans or outside them, and nothing in finite data;
     - alloc is zero-filled even over reused memory, zero / copies touch exactly their bytes, bad dtypes fail;
     - events order two streams: a copy on stream B after B.wait(event recorded on A behind 20 accumulates
       of 256 MB) sees their final sum; an event of another backend is refused.
   Prints "ops_cuda_test: N passed, M failed"; exits 1 on any failure. */
#include "atp/check_cuda.h"
#include "atp/comm.h"
#include "atp/ops.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace atp;

namespace {

int passed = 0, failed = 0;

void expect(bool ok, const std::string &what) {
  ok ? ++passed : ++failed;
  if (!ok && failed <= 40)
    std::printf("FAIL %s\n", what.c_str());
}

using Bytes = std::vector<unsigned char>;
constexpr std::size_t kGuard = 64; // poisoned bytes after every device output

Bytes poison(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i)
    b[i] = static_cast<unsigned char>(0xa5 ^ (i * 31));
  return b;
}

/// A device buffer holding `bytes` at `pad` bytes past a 256-byte-aligned allocation, guards around it.
class DevBuf {
public:
  DevBuf(Ops &ops, std::size_t pad, std::size_t bytes) : ops_(ops), pad_(pad), bytes_(bytes) {
    base_ = ATP_CHECK_OK(ops_.alloc(total()));
  }
  ~DevBuf() { ops_.free(base_); }
  DevBuf(const DevBuf &) = delete;
  DevBuf &operator=(const DevBuf &) = delete;

  std::size_t total() const { return pad_ + bytes_ + kGuard; }
  void *at() const { return static_cast<char *>(base_) + pad_; }
  /// Poison everything, then put `data` (bytes_ long, or empty) in place.
  void upload(const void *data) {
    Bytes all = poison(total());
    if (data && bytes_)
      std::memcpy(all.data() + pad_, data, bytes_);
    ATP_CHECK_OK(ops_.copy_from_host(base_, all.data(), all.size()));
  }
  /// The bytes in place; `intact` says whether the guards still hold the poison.
  Bytes download(bool &intact) const {
    Bytes all(total());
    ATP_CHECK_OK(ops_.copy_to_host(all.data(), base_, all.size()));
    const Bytes p = poison(total());
    intact = std::memcmp(all.data(), p.data(), pad_) == 0 &&
             std::memcmp(all.data() + pad_ + bytes_, p.data() + pad_ + bytes_, kGuard) == 0;
    return Bytes(all.begin() + long(pad_), all.begin() + long(pad_ + bytes_));
  }

private:
  Ops &ops_;
  void *base_ = nullptr;
  std::size_t pad_, bytes_;
};

// ---------------------------------------------------------------------------------------------------------
// inputs

std::mt19937_64 rng(20240611);

float bits_float(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// Finite, normal-looking values: N(0, 1) * scale.
std::vector<float> normal(std::size_t n, float scale) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> x(n);
  for (float &v : x)
    v = d(rng) * scale;
  return x;
}

/// Floats that probe every conversion path: random bits, wide-range values, bf16 and f16 ties, specials.
std::vector<float> probing(std::size_t n) {
  static const std::uint32_t specials[] = {
      0x00000000, 0x80000000, 0x7f800000, 0xff800000, 0x7fc00000, 0x7f800001, 0xffc12345, 0x7fbfffff,
      0x477fe000, 0x477fefff, 0x477ff000, 0xc77ff000, 0x38800000, 0x387fffff, 0x33800000, 0x33000000,
      0x33400000, 0x00000001, 0x807fffff, 0x7f7fffff, 0x3f808000, 0x3f818000, 0x38ffe000, 0x38801000};
  std::uniform_int_distribution<std::uint32_t> bits, kind(0, 7), exp(103, 142), pick(0, std::size(specials) - 1);
  std::vector<float> x(n);
  for (float &v : x) {
    const std::uint32_t k = kind(rng), r = bits(rng);
    if (k <= 1)
      v = bits_float(r);
    else if (k <= 3)
      v = std::ldexp(float(std::int32_t(r)) / 2147483648.0f, int(r % 61) - 40);
    else if (k == 4) // bf16 tie: the low 16 bits exactly half
      v = bits_float((r & 0xffff0000u) | 0x8000u);
    else if (k == 5) // f16 tie within the half range (exponents 2^-24 .. 2^15)
      v = bits_float((r & 0x80000000u) | (exp(rng) << 23) | (r & 0x007fe000u) | 0x1000u);
    else
      v = bits_float(specials[pick(rng)]);
  }
  return x;
}

/// x as elements of `dtype` (F32, BF16, F16), through the host conversions.
Bytes encode(const std::vector<float> &x, DType dtype) {
  Bytes b(x.size() * dtype_size(dtype));
  for (std::size_t i = 0; i < x.size(); ++i) {
    if (dtype == DType::F32) {
      std::memcpy(b.data() + 4 * i, &x[i], 4);
      continue;
    }
    const std::uint16_t h = dtype == DType::BF16 ? float_to_bf16(x[i]) : float_to_f16(x[i]);
    std::memcpy(b.data() + 2 * i, &h, 2);
  }
  return b;
}

/// Random 16-bit patterns (every NaN payload and subnormal) for 16-bit sources, probing floats otherwise.
Bytes probing_elements(std::size_t n, DType dtype) {
  if (dtype == DType::F32)
    return encode(probing(n), dtype);
  Bytes b(2 * n);
  std::uniform_int_distribution<unsigned> byte(0, 255);
  for (auto &c : b)
    c = static_cast<unsigned char>(byte(rng));
  return b;
}

std::string label(const char *op, std::size_t n, std::size_t off, const std::string &more = "") {
  return std::string(op) + " n=" + std::to_string(n) + " off=" + std::to_string(off) + (more.empty() ? "" : " ") +
         more;
}

// ---------------------------------------------------------------------------------------------------------
// cases

const DType kFloats[] = {DType::F32, DType::BF16, DType::F16};

void test_cast(Ops &cpu, Ops &gpu, std::size_t n, std::size_t off_dst, std::size_t off_src) {
  for (DType sd : kFloats)
    for (DType dd : kFloats) {
      const Bytes src = probing_elements(n, sd);
      Bytes want(n * dtype_size(dd));
      ATP_CHECK_OK(cpu.cast(want.data(), dd, src.data(), sd, n));
      DevBuf s(gpu, off_src * dtype_size(sd), src.size()), d(gpu, off_dst * dtype_size(dd), want.size());
      s.upload(src.data());
      d.upload(nullptr);
      const Status st = gpu.cast(d.at(), dd, s.at(), sd, n);
      bool intact = false;
      const Bytes got = d.download(intact);
      const std::string what = label("cast", n, off_dst, std::string(dtype_name(sd)) + "->" + dtype_name(dd) +
                                                             " src_off=" + std::to_string(off_src));
      expect(st.ok() && got == want && intact, what + (st.ok() ? "" : ": " + st.message()));
    }
}

void test_accumulate(Ops &cpu, Ops &gpu, std::size_t n, std::size_t off_acc, std::size_t off_src) {
  for (DType sd : kFloats) {
    std::vector<float> acc = normal(n, 3.0f);
    const Bytes src = encode(normal(n, 2.0f), sd);
    Bytes acc0(n * 4);
    std::memcpy(acc0.data(), acc.data(), acc0.size());
    ATP_CHECK_OK(cpu.accumulate(acc.data(), src.data(), sd, n));
    DevBuf a(gpu, off_acc * 4, n * 4), s(gpu, off_src * dtype_size(sd), src.size());
    a.upload(acc0.data());
    s.upload(src.data());
    const Status st = gpu.accumulate(static_cast<float *>(a.at()), s.at(), sd, n);
    bool intact = false;
    const Bytes got = a.download(intact);
    expect(st.ok() && intact && std::memcmp(got.data(), acc.data(), got.size()) == 0,
           label("accumulate", n, off_acc, std::string(dtype_name(sd)) + " src_off=" + std::to_string(off_src)));
  }
}

AdamWStep random_step(bool adam_w_mode) {
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  const int t = 1 + int(u(rng) * 100);
  AdamWStep s{};
  s.lr = 1e-3f * (0.5f + u(rng));
  s.beta1 = 0.9f, s.beta2 = 0.95f + 0.049f * u(rng), s.eps = 1e-8f;
  s.weight_decay = u(rng) < 0.25f ? 0.0f : 0.1f * u(rng);
  s.bias_correction1 = 1.0f - std::pow(s.beta1, float(t));
  s.bias_correction2 = 1.0f - std::pow(s.beta2, float(t));
  s.adam_w_mode = adam_w_mode;
  s.grad_scale = (1.0f / 1024.0f) * (0.25f + u(rng));
  return s;
}

/// offs: element offsets of p, g, m, v and out; the gradients are g_dtype elements.
void test_adamw(Ops &cpu, Ops &gpu, std::size_t n, const std::size_t (&offs)[5], DType out_dtype, bool with_out,
                bool adam_w_mode, DType g_dtype = DType::F32) {
  std::vector<float> p = normal(n, 0.05f), g = normal(n, 1.0f), m = normal(n, 1e-3f), v = normal(n, 1e-6f);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = v[i] * v[i];
    if (i % 13 == 5) // (g * grad_scale)^2 is subnormal; in f16 the smallest subnormals instead
      g[i] *= g_dtype == DType::F16 ? 1e-7f : 1e-21f;
  }
  const Bytes g_bytes = encode(g, g_dtype); // both backends read the same gradient elements
  const AdamWStep step = random_step(adam_w_mode);
  const std::size_t osz = dtype_size(out_dtype), gsz = dtype_size(g_dtype);
  std::vector<float *> host = {p.data(), m.data(), v.data()};
  std::vector<Bytes> before;
  for (float *h : host)
    before.emplace_back(reinterpret_cast<unsigned char *>(h), reinterpret_cast<unsigned char *>(h) + n * 4);
  Bytes out(n * osz);
  ATP_CHECK_OK(cpu.adamw(p.data(), g_bytes.data(), g_dtype, m.data(), v.data(), n, step,
                         with_out ? out.data() : nullptr, out_dtype));

  DevBuf dp(gpu, offs[0] * 4, n * 4), dg(gpu, offs[1] * gsz, n * gsz), dm(gpu, offs[2] * 4, n * 4),
      dv(gpu, offs[3] * 4, n * 4), dout(gpu, offs[4] * osz, n * osz);
  DevBuf *dev[] = {&dp, &dm, &dv};
  for (int k = 0; k < 3; ++k)
    dev[k]->upload(before[std::size_t(k)].data());
  dg.upload(g_bytes.data());
  dout.upload(nullptr);
  const Status st = gpu.adamw(static_cast<float *>(dp.at()), dg.at(), g_dtype, static_cast<float *>(dm.at()),
                              static_cast<float *>(dv.at()), n, step, with_out ? dout.at() : nullptr, out_dtype);
  bool ok = st.ok();
  for (int k = 0; k < 3; ++k) {
    bool intact = false;
    const Bytes got = dev[k]->download(intact);
    ok = ok && intact && std::memcmp(got.data(), host[std::size_t(k)], n * 4) == 0;
  }
  {
    bool intact = false; // the gradients are read only
    ok = ok && dg.download(intact) == g_bytes && intact;
  }
  bool intact = false;
  const Bytes got_out = dout.download(intact), all = poison(dout.total());
  const Bytes untouched(all.begin() + long(offs[4] * osz), all.begin() + long(offs[4] * osz + n * osz));
  ok = ok && intact && got_out == (with_out ? out : untouched); // no copy asked: the poison stays
  expect(ok, label("adamw", n, offs[0],
                   std::string("g ") + dtype_name(g_dtype) + " " + (with_out ? dtype_name(out_dtype) : "no-out") +
                       (adam_w_mode ? " adamw" : " l2") +
                       " offs=" + std::to_string(offs[1]) + std::to_string(offs[2]) + std::to_string(offs[3]) +
                       std::to_string(offs[4]) + (st.ok() ? "" : ": " + st.message())));
}

/// Random spans of [0, n), possibly empty or overlapping, about one in four outside the norm.
std::vector<GradSpan> random_spans(std::size_t n, std::size_t num_spans) {
  std::vector<GradSpan> spans;
  std::uniform_int_distribution<std::int64_t> at(0, std::int64_t(n));
  if (num_spans == 1)
    spans.push_back({0, std::int64_t(n), true});
  for (std::size_t s = 0; spans.size() < num_spans; ++s) {
    std::int64_t a = at(rng), b = at(rng);
    if (s % 5 == 0) // short spans, many per block
      b = std::min<std::int64_t>(std::int64_t(n), a + std::int64_t(s % 37));
    spans.push_back({std::min(a, b), std::max(a, b), s % 4 != 3});
  }
  return spans;
}

void test_grad_stats_sum(Ops &cpu, Ops &gpu, std::size_t n, std::size_t off, std::size_t num_spans, DType dtype) {
  // f16 holds up to 65504: N(0, 1) * 4 stays far below it
  const Bytes x = encode(normal(n, 4.0f), dtype);
  const std::vector<GradSpan> spans = random_spans(n, num_spans);
  const GradStats cpu_stats = ATP_CHECK_OK(cpu.grad_stats(x.data(), dtype, spans.data(), spans.size()));
  // The reference: long double accumulation of the exact double squares of the spans in the norm. Any order of
  // summing T terms of one sign in double is within (T - 1) * 2^-53 of it (relative), the CPU's included.
  std::vector<float> xf(n);
  ATP_CHECK_OK(cpu.cast(xf.data(), DType::F32, x.data(), dtype, n));
  long double exact = 0;
  double terms = 0;
  for (const GradSpan &sp : spans) {
    if (!sp.in_norm)
      continue;
    terms += double(sp.end - sp.begin);
    for (std::int64_t i = sp.begin; i < sp.end; ++i)
      exact += (long double)(double(xf[std::size_t(i)]) * double(xf[std::size_t(i)]));
  }
  const double want = double(exact), tol = std::max(1e-12, terms * std::ldexp(1.0, -53));
  const std::string what =
      label("grad_stats", n, off, std::string(dtype_name(dtype)) + " " + std::to_string(num_spans) + " spans");
  expect(std::fabs(cpu_stats.sum_squares - want) <= tol * std::fabs(want) && !cpu_stats.nonfinite,
         what + ": the CPU's sum is within bounds");
  DevBuf d(gpu, off * dtype_size(dtype), x.size());
  d.upload(x.data());
  const Result<GradStats> r1 = gpu.grad_stats(d.at(), dtype, spans.data(), spans.size());
  const Result<GradStats> r2 = gpu.grad_stats(d.at(), dtype, spans.data(), spans.size());
  const bool ok = r1.ok() && r2.ok();
  const double got = ok ? r1->sum_squares : NAN;
  expect(ok && std::fabs(got - want) <= tol * std::fabs(want) && (want != 0.0 || got == 0.0) && !r1->nonfinite,
         what + " got " + std::to_string(got) + " want " + std::to_string(want));
  expect(ok && std::memcmp(&r1->sum_squares, &r2->sum_squares, sizeof(double)) == 0,
         what + ": not the same bits twice");
}

void test_grad_stats_nonfinite(Ops &cpu, Ops &gpu, std::size_t n, std::size_t off, DType dtype) {
  // large finite values, the largest of the dtype among them
  std::vector<float> x = normal(n, dtype == DType::F16 ? 1e3f : 1e30f);
  if (n)
    x[n / 3] = dtype == DType::F16 ? 65504.0f : dtype == DType::BF16 ? bits_float(0x7f7f0000u) : 3.4028235e38f;
  // [0, n/2) in the norm, the rest only checked
  const std::vector<GradSpan> spans = {{0, std::int64_t(n / 2), true}, {std::int64_t(n / 2), std::int64_t(n), false}};
  DevBuf d(gpu, off * dtype_size(dtype), n * dtype_size(dtype));
  auto check = [&](const std::string &what) {
    const Bytes b = encode(x, dtype);
    const bool want = ATP_CHECK_OK(cpu.grad_stats(b.data(), dtype, spans.data(), spans.size())).nonfinite;
    d.upload(b.data());
    const Result<GradStats> got = gpu.grad_stats(d.at(), dtype, spans.data(), spans.size());
    expect(got.ok() && got->nonfinite == want,
           label("grad_stats nonfinite", n, off, std::string(dtype_name(dtype)) + " " + what));
    return want;
  };
  expect(!check("finite"), label("grad_stats nonfinite", n, off, "the CPU finds finite data finite"));
  const float bad[] = {INFINITY, -INFINITY, NAN, bits_float(0xff812345u)};
  const std::size_t where[] = {n ? n - 1 : 0, n / 2, 0};
  for (std::size_t w = 0; w < 3 && n; ++w) {
    const float keep = x[where[w]];
    x[where[w]] = bad[(w + n) % 4];
    expect(check("bad at " + std::to_string(where[w])), label("grad_stats nonfinite", n, off, "the CPU finds it"));
    x[where[w]] = keep;
  }
}

void test_memory(Ops &gpu) {
  const std::size_t bytes = (std::size_t(1) << 20) + 3;
  void *a = ATP_CHECK_OK(gpu.alloc(bytes));
  const Bytes dirty = poison(bytes);
  ATP_CHECK_OK(gpu.copy_from_host(a, dirty.data(), bytes));
  gpu.free(a);
  a = ATP_CHECK_OK(gpu.alloc(bytes)); // most likely the same memory again
  Bytes got(bytes, 1);
  ATP_CHECK_OK(gpu.copy_to_host(got.data(), a, bytes));
  expect(got == Bytes(bytes, 0), "alloc: zero-filled after reuse");
  gpu.free(a);
  expect(ATP_CHECK_OK(gpu.alloc(0)) == nullptr, "alloc(0) is null");

  for (std::size_t n : {std::size_t(0), std::size_t(1), std::size_t(7), bytes}) {
    const Bytes data = poison(n + 5);
    Bytes src(data.begin() + 5, data.end());
    DevBuf d(gpu, 3, n), e(gpu, 1, n);
    d.upload(nullptr);
    ATP_CHECK_OK(gpu.zero(d.at(), n));
    bool intact = false;
    expect(d.download(intact) == Bytes(n, 0) && intact, "zero n=" + std::to_string(n));
    ATP_CHECK_OK(gpu.copy_from_host(d.at(), src.data(), n));
    e.upload(nullptr);
    ATP_CHECK_OK(gpu.copy(e.at(), d.at(), n));
    expect(e.download(intact) == src && intact, "copy_from_host + copy n=" + std::to_string(n));
  }
}

/// upload: the host buffer may change as soon as the call returns, even while the stream is far behind (a
/// queue of big device copies first), for more uploads than the pinned ring has slots; stream order holds (a
/// copy between two uploads into one buffer sees the first); a copy bigger than a slot still lands.
void test_upload(Ops &gpu) {
  const std::size_t big = std::size_t(256) << 20;
  const std::size_t n = 32768 * 4 + 12; // a micro-batch of token ids, not a multiple of 16
  const int count = 11;                 // more than the ring's 4 slots
  void *x = ATP_CHECK_OK(gpu.alloc(big)), *y = ATP_CHECK_OK(gpu.alloc(big)), *first = ATP_CHECK_OK(gpu.alloc(n));
  std::vector<void *> dst;
  for (int i = 0; i < count; ++i) // allocated first: cudaMalloc may wait for the device
    dst.push_back(ATP_CHECK_OK(gpu.alloc(n)));
  for (int r = 0; r < 8; ++r) // ~2 GiB of copies: milliseconds of work queued ahead of the uploads
    ATP_CHECK_OK(gpu.copy(r % 2 ? x : y, r % 2 ? y : x, big));
  auto pattern = [&](int i) {
    Bytes p = poison(n + std::size_t(i));
    return Bytes(p.begin() + i, p.end());
  };
  Bytes host(n);
  for (int i = 0; i < count; ++i) {
    host = pattern(i);
    ATP_CHECK_OK(gpu.upload(dst[std::size_t(i)], host.data(), n));
    if (i == 1)
      ATP_CHECK_OK(gpu.copy(first, dst[0], n)); // dst[0] holds upload 0 here; upload 2 overwrites it below
    if (i == 2)
      ATP_CHECK_OK(gpu.upload(dst[0], host.data(), n));
    std::fill(host.begin(), host.end(), 0); // the caller reuses its buffer at once
  }
  for (int i = 0; i < count; ++i) {
    Bytes got(n);
    ATP_CHECK_OK(gpu.copy_to_host(got.data(), dst[std::size_t(i)], n));
    expect(got == pattern(i == 0 ? 2 : i), "upload " + std::to_string(i) + " landed, whatever came after it");
  }
  Bytes got(n);
  ATP_CHECK_OK(gpu.copy_to_host(got.data(), first, n));
  expect(got == pattern(0), "upload: a copy between two uploads into one buffer sees the first");
  const std::size_t over = (std::size_t(1) << 20) + 3; // more than a slot: copy_from_host
  Bytes large = poison(over), back(over);
  void *z = ATP_CHECK_OK(gpu.alloc(over));
  ATP_CHECK_OK(gpu.upload(z, large.data(), over));
  ATP_CHECK_OK(gpu.copy_to_host(back.data(), z, over));
  expect(back == large, "upload larger than a pinned slot");
  for (void *p : dst)
    gpu.free(p);
  for (void *p : {x, y, first, z})
    gpu.free(p);
}

void test_errors(Ops &gpu) {
  float x = 0;
  expect(!gpu.cast(&x, DType::I32, &x, DType::F32, 1).ok(), "cast to I32 fails");
  expect(!gpu.accumulate(&x, &x, DType::F64, 1).ok(), "accumulate from F64 fails");
  const AdamWStep s = random_step(true);
  expect(!gpu.adamw(&x, &x, DType::F32, &x, &x, 1, s, &x, DType::I8).ok(), "adamw to I8 fails");
  expect(!gpu.adamw(&x, &x, DType::F64, &x, &x, 1, s, nullptr, DType::F32).ok(), "adamw from F64 gradients fails");
  const GradSpan one{0, 1, true};
  expect(!gpu.grad_stats(&x, DType::I32, &one, 1).ok(), "grad_stats of I32 fails");
  expect(std::string(gpu.name()) == "cuda", "name is cuda");
}

void test_events(Ops &a, Ops &b) {
  const std::size_t n = std::size_t(1) << 26; // 256 MB of floats: long enough that an unordered copy sees it early
  float *x = static_cast<float *>(ATP_CHECK_OK(a.alloc(n * 4)));
  float *ones = static_cast<float *>(ATP_CHECK_OK(a.alloc(n * 4)));
  float *y = static_cast<float *>(ATP_CHECK_OK(b.alloc(n * 4)));
  const std::vector<float> host_ones(n, 1.0f);
  ATP_CHECK_OK(a.copy_from_host(ones, host_ones.data(), n * 4));
  ATP_CHECK_OK(b.synchronize()); // b's alloc zeroed y on b's stream
  std::unique_ptr<OpsEvent> done = ATP_CHECK_OK(a.make_event());
  for (int round = 0; round < 2; ++round) { // the second round records the same event again
    for (int i = 0; i < 20; ++i)
      ATP_CHECK_OK(a.accumulate(x, ones, DType::F32, n));
    ATP_CHECK_OK(a.record(*done));
    ATP_CHECK_OK(b.wait(*done));
    ATP_CHECK_OK(b.copy(y, x, n * 4));
    std::vector<float> got(n);
    ATP_CHECK_OK(b.copy_to_host(got.data(), y, n * 4));
    const float want = 20.0f * float(round + 1);
    const bool all = std::all_of(got.begin(), got.end(), [&](float v) { return v == want; });
    expect(all, "events: the copy on stream B after waiting sees all 20 accumulates of round " +
                    std::to_string(round + 1));
  }
  std::unique_ptr<Ops> cpu = make_cpu_ops();
  std::unique_ptr<OpsEvent> foreign = ATP_CHECK_OK(cpu->make_event());
  expect(!a.record(*foreign).ok() && !b.wait(*foreign).ok(), "events: a CPU event is refused");
  ATP_CHECK_OK(a.synchronize());
  a.free(x), a.free(ones), b.free(y);
}

} // namespace

int main() {
  cudaStream_t stream = nullptr;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::unique_ptr<Ops> cpu = make_cpu_ops();
  std::unique_ptr<Ops> gpu = ATP_CHECK_OK(make_cuda_ops(stream));

  const std::size_t sizes[] = {0, 1, 7, 8, 9, 16, 17, 33, 1000, 4099, (std::size_t(1) << 20) + 3};
  for (std::size_t n : sizes)
    for (std::size_t off : {0, 1}) {
      test_cast(*cpu, *gpu, n, off, off);
      test_accumulate(*cpu, *gpu, n, off, off);
      for (DType d : kFloats) {
        test_grad_stats_nonfinite(*cpu, *gpu, n, off, d);
        for (std::size_t spans : {1, 3, 200})
          test_grad_stats_sum(*cpu, *gpu, n, off, spans, d);
      }
      for (int mode = 0; mode < 2; ++mode) {
        const std::size_t offs[5] = {off, off, off, off, off};
        test_adamw(*cpu, *gpu, n, offs, DType::BF16, false, mode == 0);
        for (DType od : kFloats)
          test_adamw(*cpu, *gpu, n, offs, od, true, mode == 0);
        for (DType gd : {DType::BF16, DType::F16}) {
          test_adamw(*cpu, *gpu, n, offs, DType::BF16, true, mode == 0, gd);
          test_adamw(*cpu, *gpu, n, offs, DType::F16, false, mode == 0, gd);
        }
      }
    }
  // Arrays of one call at different alignments: the vector path after a head of 3, and no vector path.
  for (std::size_t n : {std::size_t(100), std::size_t(4099), (std::size_t(1) << 20) + 3}) {
    test_cast(*cpu, *gpu, n, 0, 1);
    test_cast(*cpu, *gpu, n, 3, 1);
    test_accumulate(*cpu, *gpu, n, 1, 0);
    for (DType d : kFloats)
      test_grad_stats_sum(*cpu, *gpu, n, 3, 5000, d);
    const std::size_t head3[5] = {1, 1, 1, 1, 5}, none[5] = {1, 0, 1, 0, 1};
    test_adamw(*cpu, *gpu, n, head3, DType::BF16, true, true);
    test_adamw(*cpu, *gpu, n, none, DType::F16, true, false);
    // bf16 gradients 10 bytes past alignment: a head of 3 aligns them and the fp32 arrays (4 bytes past);
    // 4 bytes past, they need a head of 6 that aligns no fp32 array: one element per thread
    const std::size_t head3_g16[5] = {1, 5, 1, 1, 5}, none_g16[5] = {1, 2, 1, 1, 1};
    test_adamw(*cpu, *gpu, n, head3_g16, DType::BF16, true, true, DType::BF16);
    test_adamw(*cpu, *gpu, n, none_g16, DType::BF16, true, false, DType::BF16);
  }
  test_memory(*gpu);
  test_upload(*gpu);
  test_errors(*gpu);
  cudaStream_t second = nullptr;
  ATP_CUDA_CHECK(cudaStreamCreateWithFlags(&second, cudaStreamNonBlocking));
  {
    std::unique_ptr<Ops> other = ATP_CHECK_OK(make_cuda_ops(second));
    test_events(*gpu, *other);
  }

  gpu.reset();
  ATP_CUDA_CHECK(cudaStreamDestroy(second));
  ATP_CUDA_CHECK(cudaStreamDestroy(stream));
  std::printf("ops_cuda_test: %d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
