// What an operator implementation sees (OpContext), and the helpers the ops share.
//
// A kernel is a plain function: it reads `ctx.input(i)` (null for a missing optional
// input), checks what it needs with ctx.fail(...) (an InputError naming the node), and
// sets `ctx.outputs[i]`. Kernels never keep state between runs. Thread count comes from
// ctx.options; every kernel gives bit-identical results for any thread count (work is
// split so that each output element is computed by exactly one thread in a fixed order).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/ir.h"
#include "runtime-check/kernels/parallel.h"

namespace ep::rt {

class QPackCache;  // weights repacked for the int8-activation kernel (qgemm.h)
class IgemmCache;  // int8 weights prepared for the QDQ kernels (igemm.h)

struct OpContext;
using KernelFn = void (*)(OpContext&);

// Runs a subgraph (If/Loop bodies) with values from the enclosing scope visible.
using SubgraphRunner = std::function<std::vector<Tensor>(const Graph&, std::span<const Tensor>)>;

struct OpContext {
    const Node& node;
    std::vector<const Tensor*> inputs;
    std::vector<Tensor> outputs;
    const ExecOptions& options;
    int64_t opset = 0;
    const SubgraphRunner* run_subgraph = nullptr;
    QPackCache* qpacks = nullptr;       // the executor's, when int8_activations is on
    IgemmCache* igemm_cache = nullptr;  // the executor's
    uint64_t constant_inputs = 0;       // bit i: input i is an initializer (same bytes each run)
    // Per input (or empty): the executor's value when input i is last read by this node and
    // the run keeps it for nothing else, so the kernel may write into it (take_input).
    std::vector<Tensor*> donated;

    [[nodiscard]] size_t input_count() const { return inputs.size(); }
    [[nodiscard]] bool has_input(size_t i) const { return i < inputs.size() && inputs[i]; }
    // The i-th input; fails naming the node when it is missing.
    [[nodiscard]] const Tensor& input(size_t i) const;
    // Input i as a value the kernel may change in place (its bytes are copied first only if
    // something else shares them), or null when the input must stay as it is.
    [[nodiscard]] Tensor* take_input(size_t i) const {
        return i < donated.size() ? donated[i] : nullptr;
    }
    [[noreturn]] void fail(const std::string& what) const;
};

// A zero-filled tensor of the given dtype and shape (data 64-byte aligned).
[[nodiscard]] Tensor make_tensor(DType dtype, std::vector<int64_t> shape);
// The same without the zero fill, for kernels that write every element of the output.
[[nodiscard]] Tensor make_uninitialized_tensor(DType dtype, std::vector<int64_t> shape);
// Reads an integer tensor (i32/i64) as int64 values.
[[nodiscard]] std::vector<int64_t> read_ints(const OpContext& ctx, const Tensor& t);
// Reads a scalar-ish (one element) float or int tensor as double.
[[nodiscard]] double read_scalar(const OpContext& ctx, const Tensor& t);

// Numpy-style broadcast of two shapes; fails naming the node when they do not broadcast.
[[nodiscard]] std::vector<int64_t> broadcast_shapes(const OpContext& ctx,
                                                    std::span<const int64_t> a,
                                                    std::span<const int64_t> b);
// Row-major strides of `shape` as seen from an output of rank `out_rank` (broadcast
// dimensions get stride 0).
[[nodiscard]] std::vector<int64_t> broadcast_strides(std::span<const int64_t> shape,
                                                     std::span<const int64_t> out_shape);

// Normalizes a possibly negative axis against `rank`; fails naming the node when out of range.
[[nodiscard]] int64_t normalize_axis(const OpContext& ctx, int64_t axis, int64_t rank);

}  // namespace ep::rt
