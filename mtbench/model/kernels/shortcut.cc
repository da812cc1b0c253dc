// The widening shortcut of DeePMD's embedding layers, for CPU: z = y + [x, x] (y [..., k n], x [..., n]).
// TensorFlow has it only as a broadcast add over a split axis, whose gradient is a reduction over that axis of size
// k; Eigen runs both at a few GB/s on CPU, several times below a plain pass over memory (measured: a float32
// [17k, 2, 50] sum at 1.7 ms). Two ops, each one pass:
//   MtbenchAddTiled(y [..., k n], x [..., n]) -> z [..., k n],  z[r, t n + i] = y[r, t n + i] + x[r, i]
//   MtbenchFoldSum (g [..., k n], width n)     -> s [..., n],    s[r, i]       = sum_t g[r, t n + i]
// Gradients (kernels/shortcut.py): AddTiled's is (g, FoldSum(g)); FoldSum's is the tiling [u, u, ...], a copy.
// Sums over t run in ascending t, as TensorFlow's two-element reduction does: the same numbers to the last bit.

#define EIGEN_USE_THREADS
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"

#include <functional>

using namespace tensorflow;

namespace {

void ShardRows(OpKernelContext* ctx, int64_t rows, int64_t cost, const std::function<void(int64_t, int64_t)>& fn) {
  auto* threads = ctx->device()->tensorflow_cpu_worker_threads();
  Shard(threads->num_threads, threads->workers, rows, cost, fn);
}

// [..., w] as rows x w; w must be a positive multiple of n.
Status TiledWidths(const TensorShape& wide, int64_t n, const char* name, int64_t* rows, int64_t* k) {
  if (wide.dims() < 1) return errors::InvalidArgument(name, ": the wide tensor needs rank >= 1");
  const int64_t w = wide.dim_size(wide.dims() - 1);
  if (n <= 0 || w % n != 0 || w == 0)
    return errors::InvalidArgument(name, ": last dimension ", w, " is not a positive multiple of the width ", n);
  *k = w / n;
  *rows = wide.num_elements() / w;
  return OkStatus();
}

}  // namespace

REGISTER_OP("MtbenchAddTiled")
    .Input("y: T").Input("x: T").Output("z: T")
    .Attr("T: {float, double}")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      c->set_output(0, c->input(0));
      return OkStatus();
    });

template <typename T>
class AddTiledOp : public OpKernel {
 public:
  explicit AddTiledOp(OpKernelConstruction* ctx) : OpKernel(ctx) {}
  void Compute(OpKernelContext* ctx) override {
    const Tensor& y = ctx->input(0);
    const Tensor& x = ctx->input(1);
    OP_REQUIRES(ctx, x.dims() == y.dims() && x.dims() >= 1,
                errors::InvalidArgument("MtbenchAddTiled: y ", y.shape().DebugString(), " and x ",
                                        x.shape().DebugString(), " need the same rank"));
    for (int d = 0; d + 1 < x.dims(); ++d)
      OP_REQUIRES(ctx, x.dim_size(d) == y.dim_size(d),
                  errors::InvalidArgument("MtbenchAddTiled: y ", y.shape().DebugString(), " and x ",
                                          x.shape().DebugString(), " differ before the last axis"));
    const int64_t n = x.dim_size(x.dims() - 1);
    int64_t rows = 0, k = 0;
    OP_REQUIRES_OK(ctx, TiledWidths(y.shape(), n, "MtbenchAddTiled", &rows, &k));
    Tensor* z = nullptr;
    OP_REQUIRES_OK(ctx, ctx->forward_input_or_allocate_output({0}, 0, y.shape(), &z));
    if (z->NumElements() == 0) return;
    const T* yp = y.flat<T>().data();
    const T* xp = x.flat<T>().data();
    T* zp = z->flat<T>().data();
    auto work = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* xr = xp + r * n;
        for (int64_t t = 0; t < k; ++t) {
          const T* yr = yp + (r * k + t) * n;
          T* zr = zp + (r * k + t) * n;
          for (int64_t i = 0; i < n; ++i) zr[i] = yr[i] + xr[i];
        }
      }
    };
    ShardRows(ctx, rows, 3 * k * n, work);
  }
};

REGISTER_OP("MtbenchFoldSum")
    .Input("g: T").Output("s: T")
    .Attr("T: {float, double}").Attr("width: int >= 1")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      int64_t width;
      TF_RETURN_IF_ERROR(c->GetAttr("width", &width));
      shape_inference::ShapeHandle g, out;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 1, &g));
      TF_RETURN_IF_ERROR(c->ReplaceDim(g, -1, c->MakeDim(width), &out));
      c->set_output(0, out);
      return OkStatus();
    });

template <typename T>
class FoldSumOp : public OpKernel {
 public:
  explicit FoldSumOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("width", &n_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& g = ctx->input(0);
    int64_t rows = 0, k = 0;
    OP_REQUIRES_OK(ctx, TiledWidths(g.shape(), n_, "MtbenchFoldSum", &rows, &k));
    TensorShape shape = g.shape();
    shape.set_dim(shape.dims() - 1, n_);
    Tensor* s = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, shape, &s));
    if (s->NumElements() == 0) return;
    const T* gp = g.flat<T>().data();
    T* sp = s->flat<T>().data();
    const int64_t n = n_;
    auto work = [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        const T* gr = gp + r * k * n;
        T* sr = sp + r * n;
        for (int64_t i = 0; i < n; ++i) sr[i] = gr[i];
        for (int64_t t = 1; t < k; ++t)
          for (int64_t i = 0; i < n; ++i) sr[i] += gr[t * n + i];
      }
    };
    ShardRows(ctx, rows, 2 * k * n, work);
  }

 private:
  int64_t n_ = 1;
};

#define REGISTER(T)                                                                              \
  REGISTER_KERNEL_BUILDER(Name("MtbenchAddTiled").Device(DEVICE_CPU).TypeConstraint<T>("T"),    \
                          AddTiledOp<T>);                                                        \
  REGISTER_KERNEL_BUILDER(Name("MtbenchFoldSum").Device(DEVICE_CPU).TypeConstraint<T>("T"), FoldSumOp<T>);
REGISTER(float)
REGISTER(double)
#undef REGISTER
