// The dense layers' matrix product for CPU, float64: Eigen's contraction on TensorFlow's CPU thread pool, as
// TensorFlow's own MatMul kernel, but compiled for this CPU (see batch_matmul.cc and build.py).

#define EIGEN_USE_THREADS
#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "unsupported/Eigen/CXX11/Tensor"

using namespace tensorflow;

REGISTER_OP("MtbenchMatMul")
    .Input("a: T").Input("b: T").Output("product: T")
    .Attr("T: {double}").Attr("transpose_a: bool = false").Attr("transpose_b: bool = false")
    .SetShapeFn([](shape_inference::InferenceContext* c) {
      shape_inference::ShapeHandle a, b;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 2, &a));
      TF_RETURN_IF_ERROR(c->WithRank(c->input(1), 2, &b));
      bool ta, tb;
      TF_RETURN_IF_ERROR(c->GetAttr("transpose_a", &ta));
      TF_RETURN_IF_ERROR(c->GetAttr("transpose_b", &tb));
      c->set_output(0, c->Matrix(c->Dim(a, ta ? 1 : 0), c->Dim(b, tb ? 0 : 1)));
      return OkStatus();
    });

template <typename T>
class MatMulOp : public OpKernel {
 public:
  explicit MatMulOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("transpose_a", &ta_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("transpose_b", &tb_));
  }
  void Compute(OpKernelContext* ctx) override {
    const Tensor& a = ctx->input(0);
    const Tensor& b = ctx->input(1);
    OP_REQUIRES(ctx, a.dims() == 2 && b.dims() == 2, errors::InvalidArgument("MtbenchMatMul: operands must be matrices"));
    const int64_t m = a.dim_size(ta_ ? 1 : 0), k = a.dim_size(ta_ ? 0 : 1);
    const int64_t k2 = b.dim_size(tb_ ? 1 : 0), n = b.dim_size(tb_ ? 0 : 1);
    OP_REQUIRES(ctx, k == k2, errors::InvalidArgument("MtbenchMatMul: inner dimensions differ"));
    Tensor* z = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(0, TensorShape({m, n}), &z));
    if (z->NumElements() == 0) return;
    auto out = z->matrix<T>();
    if (k == 0) { out.setZero(); return; }
    Eigen::array<Eigen::IndexPair<Eigen::DenseIndex>, 1> dims;
    dims[0] = Eigen::IndexPair<Eigen::DenseIndex>(ta_ ? 0 : 1, tb_ ? 1 : 0);
    out.device(ctx->eigen_cpu_device()) = a.matrix<T>().contract(b.matrix<T>(), dims);
  }
 private:
  bool ta_, tb_;
};

REGISTER_KERNEL_BUILDER(Name("MtbenchMatMul").Device(DEVICE_CPU).TypeConstraint<double>("T"), MatMulOp<double>);
