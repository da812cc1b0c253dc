// Matrix products for CPU, compiled on the user's machine for its own instruction set (see build.py): TensorFlow's
// float64 BatchMatMulV2 and MatMul kernels are built for a baseline instruction set and run at 0.3-0.95 of the
// rate of the same code built for the host, at the models' shapes (benchmarks/kernel_rates.py); results equal them
// to rounding. float64 only: float32 products go to TensorFlow's oneDNN kernels, as fast or faster (kernel_rates.py).
// (The dense layers' MtbenchMatMul is in matmul.cc: each source builds on its own core.)

#define EIGEN_USE_THREADS
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/util/work_sharder.h"
#include "Eigen/Core"

using namespace tensorflow;

REGISTER_OP("MtbenchBatchMatMul")
    .Input("x: T").Input("y: T").Output("z: T")
    .Attr("T: {double}").Attr("adj_x: bool = false").Attr("adj_y: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle x, y, batch, out;
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(0), 3, &x));
      TF_RETURN_IF_ERROR(c->WithRankAtLeast(c->input(1), 3, &y));
      bool ax, ay;
      TF_RETURN_IF_ERROR(c->GetAttr("adj_x", &ax));
      TF_RETURN_IF_ERROR(c->GetAttr("adj_y", &ay));
      int r = c->Rank(x);
      TF_RETURN_IF_ERROR(c->Subshape(x, 0, r - 2, &batch));
      auto m = c->Dim(x, ax ? r - 1 : r - 2);
      auto n = c->Dim(y, ay ? c->Rank(y) - 2 : c->Rank(y) - 1);
      TF_RETURN_IF_ERROR(c->Concatenate(batch, c->Matrix(m, n), &out));
      c->set_output(0, out);
      return OkStatus();
    });

template <typename T>
class BatchMatMulOp : public OpKernel {
 public:
  explicit BatchMatMulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adj_x", &adj_x_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("adj_y", &adj_y_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& x = ctx->input(0);
    const Tensor& y = ctx->input(1);
    const int r = x.dims();
    OP_REQUIRES(ctx, r >= 3 && y.dims() == r, errors::InvalidArgument("MtbenchBatchMatMul: x and y need the same rank >= 3"));
    int64_t batch = 1;
    TensorShape out_shape;
    for (int i = 0; i < r - 2; ++i) {
      OP_REQUIRES(ctx, x.dim_size(i) == y.dim_size(i), errors::InvalidArgument("MtbenchBatchMatMul: batch dimensions differ (no broadcasting)"));
      batch *= x.dim_size(i);
      out_shape.AddDim(x.dim_size(i));
    }
    const int64_t xr = x.dim_size(r - 2), xc = x.dim_size(r - 1);
    const int64_t yr = y.dim_size(r - 2), yc = y.dim_size(r - 1);
    const int64_t m = adj_x_ ? xc : xr, k = adj_x_ ? xr : xc;
    const int64_t k2 = adj_y_ ? yc : yr, n = adj_y_ ? yr : yc;
    OP_REQUIRES(ctx, k == k2, errors::InvalidArgument("MtbenchBatchMatMul: inner dimensions differ"));
    out_shape.AddDim(m);
    out_shape.AddDim(n);
    Tensor* z = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, out_shape, &z));
    if (z->NumElements() == 0) return;
    using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using CMap = Eigen::Map<const Mat>;
    using MMap = Eigen::Map<Mat>;
    const T* xp = x.flat<T>().data();
    const T* yp = y.flat<T>().data();
    T* zp = z->flat<T>().data();
    const bool ax = adj_x_, ay = adj_y_;
    auto work = [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        CMap X(xp + b * xr * xc, xr, xc);
        CMap Y(yp + b * yr * yc, yr, yc);
        MMap Z(zp + b * m * n, m, n);
        if (k == 0) { Z.setZero(); continue; }
        if (!ax && !ay) Z.noalias() = X * Y;
        else if (ax && !ay) Z.noalias() = X.transpose() * Y;
        else if (!ax && ay) Z.noalias() = X * Y.transpose();
        else Z.noalias() = X.transpose() * Y.transpose();
      }
    };
    auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
    Shard(ctx->device()->tensorflow_cpu_worker_threads()->num_threads, workers, batch, 2 * m * n * k, work);
  }
 private:
  bool adj_x_, adj_y_;
};

REGISTER_KERNEL_BUILDER(Name("MtbenchBatchMatMul").Device(DEVICE_CPU).TypeConstraint<double>("T"), BatchMatMulOp<double>);
