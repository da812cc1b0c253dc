// DeePMD's smooth environment matrix per neighbour slot, for CPU, in float64 (coordinates are float64 in every
// precision mode): em = sw(r) (1/a, x/a^2, y/a^2, z/a^2) with a = r + protection (or em = sw/a, radial), and sw.
// In TensorFlow ops this is ~15 element-wise passes over [atoms, sel, 3|4], each again in the force's backward pass
// and once more in the force loss's gradient: a fifth of a float32 se_e2_a step. Per slot the Jacobian J (rows:
// em's columns and sw; columns: x, y, z) is a few dozen flops, so the ops work slot by slot:
//   MtbenchEnvMat       (rij [S,3], mask [S], params)          -> em [S,C], sw [S]
//   MtbenchEnvMatGrad   (g_em [S,C], g_sw [S], rij, mask, params) -> J^T g  [S,3]
//   MtbenchEnvMatTangent(u [S,3], rij, mask, params)           -> J u     [S,C], [S]
// params = (rcut_smth, rcut, protection) as a float64 tensor, so the constants are exactly the Python ones. The
// last two are linear in g and u and each the other's gradient (registered in env.py); their gradient in rij (a
// second derivative in positions) is taken from TensorFlow's own formula there. Padding slots (mask false) are 0.

// No fused multiply-adds here: sw near rcut is a difference of numbers near 1, and rounded as TensorFlow's separate
// ops round it, it is the same to the last bit (contracted, it differed by 7e-4 relative at rcut - 1e-9, enough
// to move se_atten's attention there by 1e-7).
#if defined(__clang__)
#pragma clang fp contract(off)
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define EIGEN_USE_THREADS
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include <algorithm>
#include <cmath>

using namespace tensorflow;

namespace {

struct Slot {  // one real slot's values and the pieces of its Jacobian
  double sw, dsw, inv2, t0, a0;  // switch, d sw / dr, 1/a^2, 1/a, d em0 / dr
  double q[3], t1[3], b[3];      // x/r, x/a^2, d em_{d+1} / dr without the sw/a^2 diagonal
};

inline Slot Eval(const double* x, double rmin, double rmax, double protection) {
  Slot s;
  const double r2 = x[0] * x[0] + x[1] * x[1] + x[2] * x[2];
  const double r = std::sqrt(r2);
  const double u = (std::min(std::max(r, rmin), rmax) - rmin) / (rmax - rmin);
  const double u2 = u * u;
  s.sw = u2 * u * (-6.0 * u2 + 15.0 * u - 10.0) + 1.0;
  // the switch's derivative, inside [rmin, rmax] as TensorFlow's clip passes it (zero at both ends anyway)
  const double um1 = u - 1.0;  // d sw / du = -30 u^2 (u - 1)^2, factored: no cancellation near either end
  s.dsw = (r >= rmin && r <= rmax) ? -30.0 * u2 * (um1 * um1) / (rmax - rmin) : 0.0;
  const double a = r + protection;
  s.t0 = 1.0 / a;
  const double a2 = a * a;
  s.inv2 = 1.0 / a2;
  s.a0 = -s.inv2 * s.sw + s.t0 * s.dsw;
  const double inv3x2 = 2.0 * s.sw / (a2 * a);
  for (int d = 0; d < 3; ++d) {
    s.q[d] = x[d] / r;
    s.t1[d] = x[d] / a2;
    s.b[d] = -inv3x2 * x[d] + s.t1[d] * s.dsw;
  }
  return s;
}

// The slots of one call: rij [S, 3] at input ``first``, mask [S] after it, params after that, checked.
struct Slots {
  const double* x;
  const bool* mask;
  int64_t n;
  double rmin, rmax, protection;
};

Status ReadSlots(OpKernelContext* ctx, int first, Slots* out) {
  const Tensor &rij = ctx->input(first), &mask = ctx->input(first + 1), &params = ctx->input(first + 2);
  if (rij.dims() != 2 || rij.dim_size(1) != 3) return errors::InvalidArgument("rij must be [S, 3]");
  if (mask.dims() != 1 || mask.dim_size(0) != rij.dim_size(0))
    return errors::InvalidArgument("mask must be [S] with S = rij's rows (", rij.dim_size(0), ")");
  if (params.NumElements() != 3) return errors::InvalidArgument("params must hold (rcut_smth, rcut, protection)");
  auto v = params.flat<double>();
  *out = Slots{rij.flat<double>().data(), mask.flat<bool>().data(), rij.dim_size(0), v(0), v(1), v(2)};
  return OkStatus();
}

// real(i, slot) for every real slot, pad(i) for every padding slot, on TensorFlow's CPU threads.
template <typename Real, typename Pad>
void ForEachSlot(OpKernelContext* ctx, const Slots& s, Real real, Pad pad) {
  auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
  Shard(threads->num_threads, threads->workers, s.n, 60, [&](int64_t s0, int64_t s1) {
    for (int64_t i = s0; i < s1; ++i) {
      if (s.mask[i])
        real(i, Eval(s.x + 3 * i, s.rmin, s.rmax, s.protection));
      else
        pad(i);
    }
  });
}

Status SetEmShapes(shape_inference::InferenceContext* c, bool radial) {
  auto s = c->Dim(c->input(0), 0);
  c->set_output(0, c->MakeShape({s, radial ? 1 : 4}));
  c->set_output(1, c->MakeShape({s}));
  return OkStatus();
}

}  // namespace

REGISTER_OP("MtbenchEnvMat")
    .Input("rij: double").Input("mask: bool").Input("params: double").Output("em: double").Output("sw: double")
    .Attr("radial: bool")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      bool radial;
      TF_RETURN_IF_ERROR(c->GetAttr("radial", &radial));
      return SetEmShapes(c, radial);
    });

REGISTER_OP("MtbenchEnvMatGrad")
    .Input("g_em: double").Input("g_sw: double").Input("rij: double").Input("mask: bool").Input("params: double")
    .Output("g_rij: double").Attr("radial: bool")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(2));
      return OkStatus();
    });

REGISTER_OP("MtbenchEnvMatTangent")
    .Input("u: double").Input("rij: double").Input("mask: bool").Input("params: double")
    .Output("t_em: double").Output("t_sw: double").Attr("radial: bool")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      bool radial;
      TF_RETURN_IF_ERROR(c->GetAttr("radial", &radial));
      return SetEmShapes(c, radial);
    });

class EnvMatBase : public OpKernel {
 public:
  explicit EnvMatBase(OpKernelConstruction* ctx) : OpKernel(ctx) { OP_REQUIRES_OK(ctx, ctx->GetAttr("radial", &radial_)); }

 protected:
  int cols() const { return radial_ ? 1 : 4; }
  bool radial_;
};

class EnvMatOp : public EnvMatBase {
 public:
  using EnvMatBase::EnvMatBase;
  void Compute(OpKernelContext* ctx) override {
    Slots in;
    OP_REQUIRES_OK(ctx, ReadSlots(ctx, 0, &in));
    const int C = cols();
    Tensor *em = nullptr, *sw = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({in.n, C}), &em));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({in.n}), &sw));
    double *e = em->flat<double>().data(), *w = sw->flat<double>().data();
    const bool radial = radial_;
    ForEachSlot(ctx, in, [&](int64_t i, const Slot& s) {
        double* ei = e + i * C;
        ei[0] = s.t0 * s.sw;
        if (!radial)
          for (int d = 0; d < 3; ++d) ei[1 + d] = s.t1[d] * s.sw;
        w[i] = s.sw;
      }, [&](int64_t i) {
        std::fill(e + i * C, e + (i + 1) * C, 0.0);
        w[i] = 0.0;
      });
  }
};

class EnvMatGradOp : public EnvMatBase {
 public:
  using EnvMatBase::EnvMatBase;
  void Compute(OpKernelContext* ctx) override {
    Slots in;
    OP_REQUIRES_OK(ctx, ReadSlots(ctx, 2, &in));
    const Tensor &g_em = ctx->input(0), &g_sw = ctx->input(1);
    const int C = cols();
    OP_REQUIRES(ctx, g_em.NumElements() == in.n * C && g_sw.NumElements() == in.n,
                errors::InvalidArgument("g_em must be [S, ", C, "] and g_sw [S]"));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({in.n, 3}), &out));
    const double *ge = g_em.flat<double>().data(), *gs = g_sw.flat<double>().data();
    double* o = out->flat<double>().data();
    const bool radial = radial_;
    ForEachSlot(ctx, in, [&](int64_t i, const Slot& s) {
        const double* g = ge + i * C;
        double along = g[0] * s.a0 + gs[i] * s.dsw;  // the part along r: sum_c g_c d(out_c)/dr
        if (!radial) along += g[1] * s.b[0] + g[2] * s.b[1] + g[3] * s.b[2];
        for (int d = 0; d < 3; ++d) o[3 * i + d] = along * s.q[d] + (radial ? 0.0 : s.sw * s.inv2 * g[1 + d]);
      }, [&](int64_t i) { std::fill(o + 3 * i, o + 3 * i + 3, 0.0); });
  }
};

class EnvMatTangentOp : public EnvMatBase {
 public:
  using EnvMatBase::EnvMatBase;
  void Compute(OpKernelContext* ctx) override {
    Slots in;
    OP_REQUIRES_OK(ctx, ReadSlots(ctx, 1, &in));
    const Tensor& u = ctx->input(0);
    OP_REQUIRES(ctx, u.NumElements() == in.n * 3, errors::InvalidArgument("u must be [S, 3]"));
    const int C = cols();
    Tensor *t_em = nullptr, *t_sw = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({in.n, C}), &t_em));
    OP_REQUIRES_OK(ctx, ctx->allocate_output(1, TensorShape({in.n}), &t_sw));
    const double* up = u.flat<double>().data();
    double *te = t_em->flat<double>().data(), *ts = t_sw->flat<double>().data();
    const bool radial = radial_;
    ForEachSlot(ctx, in, [&](int64_t i, const Slot& s) {
        double* ti = te + i * C;
        const double* ui = up + 3 * i;
        const double qu = s.q[0] * ui[0] + s.q[1] * ui[1] + s.q[2] * ui[2];
        ti[0] = s.a0 * qu;
        if (!radial)
          for (int d = 0; d < 3; ++d) ti[1 + d] = s.sw * s.inv2 * ui[d] + s.b[d] * qu;
        ts[i] = s.dsw * qu;
      }, [&](int64_t i) {
        std::fill(te + i * C, te + (i + 1) * C, 0.0);
        ts[i] = 0.0;
      });
  }
};

REGISTER_KERNEL_BUILDER(Name("MtbenchEnvMat").Device(DEVICE_CPU), EnvMatOp);
REGISTER_KERNEL_BUILDER(Name("MtbenchEnvMatGrad").Device(DEVICE_CPU), EnvMatGradOp);
REGISTER_KERNEL_BUILDER(Name("MtbenchEnvMatTangent").Device(DEVICE_CPU), EnvMatTangentOp);
