// Sums over the real neighbours of each row (centre atom), for CPU: the embedding net of se_e2_a runs on real
// neighbour pairs only, P of them in row order, and T_i = sum_{p in row i} g_p (x) r_p ([rows, M, C]) is needed.
// TensorFlow can only do that by scattering g back into the padded [rows, sel, M] layout and multiplying; these ops
// sum the pairs where they are. Three ops, each linear in its tensor inputs, whose gradients are each other
// (registered in rows.py), so derivatives of any order stay on them:
//   MtbenchRowOuterSum(g [P,M], r [P,C])     -> T [rows,M,C],  T[i]    = sum_{p in i} g_p^T r_p
//   MtbenchRowApply   (d [rows,M,C], r [P,C]) -> A [P,M],      A[p,:]  = d[row(p)] r_p
//   MtbenchRowApplyT  (d [rows,M,C], g [P,M]) -> B [P,C],      B[p,:]  = d[row(p)]^T g_p
// row_ids [P] (int64) is each pair's row, ascending (tf.where's order); a row may have no pair.

#define EIGEN_USE_THREADS
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include <algorithm>
#include <functional>
#include <vector>

using namespace tensorflow;

namespace {

Status RowIdsOk(const Tensor& ids, int64_t pairs, int64_t rows) {
  if (ids.dims() != 1 || ids.dim_size(0) != pairs)
    return errors::InvalidArgument("row_ids must be a vector with one entry per pair (", pairs, "), got shape ",
                                   ids.shape().DebugString());
  auto v = ids.vec<int64_t>();
  for (int64_t p = 0; p < pairs; ++p) {
    if (v(p) < 0 || v(p) >= rows) return errors::InvalidArgument("row_ids[", p, "] = ", v(p), " not in [0, ", rows, ")");
    if (p > 0 && v(p) < v(p - 1)) return errors::InvalidArgument("row_ids must be ascending (at pair ", p, ")");
  }
  return OkStatus();
}

void ShardOver(OpKernelContext* ctx, int64_t units, int64_t cost, const std::function<void(int64_t, int64_t)>& fn) {
  auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
  Shard(threads->num_threads, threads->workers, units, cost, fn);
}

// The loops below are written for the compiler to vectorise over C (CC = 4, the env matrix's columns, is a
// compile-time constant; CC = 0 takes C at run time) and to keep several independent sums in flight.

// out [M, C] = sum_{p in [p0, p1)} g_p^T r_p, four pairs per pass over out (a quarter of the loads and stores).
template <typename T, int CC>
void OuterSumRow(const T* gp, const T* rp, T* out, int64_t p0, int64_t p1, int64_t M, int64_t Cd) {
  const int64_t C = CC > 0 ? CC : Cd;
  std::fill(out, out + M * C, T(0));
  int64_t p = p0;
  for (; p + 4 <= p1; p += 4) {
    const T *g0 = gp + p * M, *g1 = g0 + M, *g2 = g1 + M, *g3 = g2 + M;
    const T *r0 = rp + p * C, *r1 = r0 + C, *r2 = r1 + C, *r3 = r2 + C;
    for (int64_t m = 0; m < M; ++m) {
      T* o = out + m * C;
      for (int64_t c = 0; c < C; ++c) o[c] += (g0[m] * r0[c] + g1[m] * r1[c]) + (g2[m] * r2[c] + g3[m] * r3[c]);
    }
  }
  for (; p < p1; ++p) {
    const T* g0 = gp + p * M;
    const T* r0 = rp + p * C;
    for (int64_t m = 0; m < M; ++m) {
      T* o = out + m * C;
      for (int64_t c = 0; c < C; ++c) o[c] += g0[m] * r0[c];
    }
  }
}

// a [M] = d [M, C] r [C]
template <typename T, int CC>
void ApplyPair(const T* d, const T* r, T* a, int64_t M, int64_t Cd) {
  const int64_t C = CC > 0 ? CC : Cd;
  for (int64_t m = 0; m < M; ++m) {
    T s = 0;
    for (int64_t c = 0; c < C; ++c) s += d[m * C + c] * r[c];
    a[m] = s;
  }
}

// b [C] = d [M, C]^T g [M], with four partial sums (one sum would wait on each multiply-add's latency)
template <typename T, int CC>
void ApplyPairT(const T* d, const T* g, T* b, int64_t M, int64_t Cd) {
  const int64_t C = CC > 0 ? CC : Cd;
  if constexpr (CC == 4) {  // two rows of d per vector of 8, four such sums
    T s[4][8] = {};
    int64_t m = 0;
    for (; m + 8 <= M; m += 8) {
      for (int u = 0; u < 4; ++u) {
        const T* x = d + (m + 2 * u) * 4;
        const T ga = g[m + 2 * u], gb = g[m + 2 * u + 1];
        for (int k = 0; k < 4; ++k) {
          s[u][k] += x[k] * ga;
          s[u][4 + k] += x[4 + k] * gb;
        }
      }
    }
    for (; m < M; ++m)
      for (int k = 0; k < 4; ++k) s[0][k] += d[m * 4 + k] * g[m];
    for (int k = 0; k < 4; ++k) b[k] = ((s[0][k] + s[0][4 + k]) + (s[1][k] + s[1][4 + k])) +
                                       ((s[2][k] + s[2][4 + k]) + (s[3][k] + s[3][4 + k]));
    return;
  }
  constexpr int kMaxC = 16;
  if (C > kMaxC) {
    std::fill(b, b + C, T(0));
    for (int64_t m = 0; m < M; ++m)
      for (int64_t c = 0; c < C; ++c) b[c] += d[m * C + c] * g[m];
    return;
  }
  T s0[kMaxC] = {}, s1[kMaxC] = {}, s2[kMaxC] = {}, s3[kMaxC] = {};
  int64_t m = 0;
  for (; m + 4 <= M; m += 4) {
    const T* x = d + m * C;
    for (int64_t c = 0; c < C; ++c) {
      s0[c] += x[c] * g[m];
      s1[c] += x[C + c] * g[m + 1];
      s2[c] += x[2 * C + c] * g[m + 2];
      s3[c] += x[3 * C + c] * g[m + 3];
    }
  }
  for (; m < M; ++m)
    for (int64_t c = 0; c < C; ++c) s0[c] += d[m * C + c] * g[m];
  for (int64_t c = 0; c < C; ++c) b[c] = (s0[c] + s1[c]) + (s2[c] + s3[c]);
}

}  // namespace

REGISTER_OP("MtbenchRowOuterSum")
    .Input("g: T").Input("r: T").Input("row_ids: int64").Input("rows: int64").Output("t: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle g, r;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &g));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &r));
      c->set_output(0, c->MakeShape({c->UnknownDim(), c->Dim(g, 1), c->Dim(r, 1)}));
      return OkStatus();
    });

template <typename T>
class RowOuterSumOp : public OpKernel {
 public:
  explicit RowOuterSumOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& g = ctx->input(0);
    const Tensor& r = ctx->input(1);
    const Tensor& ids = ctx->input(2);
    OP_REQUIRES(ctx, g.dims() == 2 && r.dims() == 2 && g.dim_size(0) == r.dim_size(0),
                errors::InvalidArgument("MtbenchRowOuterSum: g [P,M] and r [P,C] need the same P"));
    OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(ctx->input(3).shape()), errors::InvalidArgument("rows must be a scalar"));
    const int64_t rows = ctx->input(3).scalar<int64_t>()();
    const int64_t P = g.dim_size(0), M = g.dim_size(1), C = r.dim_size(1);
    OP_REQUIRES(ctx, rows >= 0, errors::InvalidArgument("rows must be >= 0"));
    OP_REQUIRES_OK(ctx, RowIdsOk(ids, P, rows));
    Tensor* t = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({rows, M, C}), &t));
    if (t->NumElements() == 0) return;
    std::vector<int64_t> start(rows + 1, 0);  // pairs of row i: [start[i], start[i+1])
    auto v = ids.vec<int64_t>();
    for (int64_t p = 0; p < P; ++p) ++start[v(p) + 1];
    for (int64_t i = 0; i < rows; ++i) start[i + 1] += start[i];
    const T* gp = g.flat<T>().data();
    const T* rp = r.flat<T>().data();
    T* tp = t->flat<T>().data();
    auto work = [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        if (C == 4) OuterSumRow<T, 4>(gp, rp, tp + i * M * C, start[i], start[i + 1], M, C);
        else OuterSumRow<T, 0>(gp, rp, tp + i * M * C, start[i], start[i + 1], M, C);
      }
    };
    ShardOver(ctx, rows, 2 * M * C * std::max<int64_t>(P / std::max<int64_t>(rows, 1), 1), work);
  }
};

// A and B share their loop: for each pair, a product with its row's [M, C] block.
// Output [P, d's axis DAxis]: M for A (axis 1), C for B (axis 2).
template <int DAxis>
Status ApplyShape(shape_inference::InferenceContext* c) {
  shape_inference::ShapeHandle d, x;
  TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &d));
  TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &x));
  c->set_output(0, c->Matrix(c->Dim(x, 0), c->Dim(d, DAxis)));
  return OkStatus();
}

REGISTER_OP("MtbenchRowApply")
    .Input("d: T").Input("r: T").Input("row_ids: int64").Output("a: T")
    .Attr("T: {float, double}")
    .SetShapeFn(ApplyShape<1>);

REGISTER_OP("MtbenchRowApplyT")
    .Input("d: T").Input("g: T").Input("row_ids: int64").Output("b: T")
    .Attr("T: {float, double}")
    .SetShapeFn(ApplyShape<2>);

template <typename T, bool Transposed>
class RowApplyOp : public OpKernel {
 public:
  explicit RowApplyOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& d = ctx->input(0);
    const Tensor& x = ctx->input(1);  // r [P, C] (A), or g [P, M] (B)
    const char* name = Transposed ? "MtbenchRowApplyT" : "MtbenchRowApply";
    OP_REQUIRES(ctx, d.dims() == 3 && x.dims() == 2, errors::InvalidArgument(name, ": d [rows,M,C] and a matrix"));
    const int64_t rows = d.dim_size(0), M = d.dim_size(1), C = d.dim_size(2), P = x.dim_size(0);
    OP_REQUIRES(ctx, x.dim_size(1) == (Transposed ? M : C),
                errors::InvalidArgument(name, ": inner dimensions differ"));
    OP_REQUIRES_OK(ctx, RowIdsOk(ctx->input(2), P, rows));
    Tensor* out = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({P, Transposed ? C : M}), &out));
    if (out->NumElements() == 0) return;
    auto v = ctx->input(2).vec<int64_t>();
    const T* dp = d.flat<T>().data();
    const T* xp = x.flat<T>().data();
    T* op = out->flat<T>().data();
    auto work = [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* blk = dp + v(p) * M * C;
        if (!Transposed) {
          if (C == 4) ApplyPair<T, 4>(blk, xp + p * C, op + p * M, M, C);
          else ApplyPair<T, 0>(blk, xp + p * C, op + p * M, M, C);
        } else {
          if (C == 4) ApplyPairT<T, 4>(blk, xp + p * M, op + p * C, M, C);
          else ApplyPairT<T, 0>(blk, xp + p * M, op + p * C, M, C);
        }
      }
    };
    ShardOver(ctx, P, 2 * M * C, work);
  }
};

REGISTER_KERNEL_BUILDER(Name("MtbenchRowOuterSum").Device(DEVICE_CPU).TypeConstraint<float>("T"), RowOuterSumOp<float>);
REGISTER_KERNEL_BUILDER(Name("MtbenchRowOuterSum").Device(DEVICE_CPU).TypeConstraint<double>("T"), RowOuterSumOp<double>);
REGISTER_KERNEL_BUILDER(Name("MtbenchRowApply").Device(DEVICE_CPU).TypeConstraint<float>("T"), RowApplyOp<float, false>);
REGISTER_KERNEL_BUILDER(Name("MtbenchRowApply").Device(DEVICE_CPU).TypeConstraint<double>("T"), RowApplyOp<double, false>);
REGISTER_KERNEL_BUILDER(Name("MtbenchRowApplyT").Device(DEVICE_CPU).TypeConstraint<float>("T"), RowApplyOp<float, true>);
REGISTER_KERNEL_BUILDER(Name("MtbenchRowApplyT").Device(DEVICE_CPU).TypeConstraint<double>("T"), RowApplyOp<double, true>);
