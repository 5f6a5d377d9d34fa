// Ops that select, reorder or place elements without arithmetic: Compress,
// ReverseSequence, CenterCropPad, TensorScatter and Unique. Elements are moved as bytes
// (any fixed-size dtype; Unique compares values of a numeric dtype), so results are exact
// and the same for any thread count.
//   Compress(X, condition [bool]; axis): the slices of X along axis (X flattened without
//       axis) whose condition is true; condition may be shorter than the axis.
//   ReverseSequence(X, sequence_lens [B]; batch_axis = 1, time_axis = 0): per batch b the
//       first sequence_lens[b] steps along time_axis reversed, the rest copied.
//   CenterCropPad(X, shape; axes): per axis, a centered crop (start (in - out) / 2) or a
//       centered zero pad (start (out - in) / 2) to the given size.
//   TensorScatter(past_cache, update, write_indices [B]; axis = -2, mode = linear):
//       past_cache with update[b, ..., s, ...] written at position write_indices[b] + s
//       along axis (modulo its size in mode "circular"); write_indices 0 when absent.
//   Unique(X; axis, sorted = 1): Y the distinct elements (or slices along axis) in
//       ascending (lexicographic) order, or in order of first occurrence with sorted = 0;
//       indices: first occurrence of each in X; inverse_indices: each X element's index
//       in Y; counts: occurrences. All three int64.
#include <algorithm>
#include <cstring>
#include <numeric>

#include "runtime-check/ops/element_access.h"
#include "runtime-check/ops/elementwise.h"
#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

// Bytes per element of a fixed-size dtype (not strings, not 4-bit).
size_t element_bytes(const OpContext& c, DType dtype, const char* what) {
    int bits = traits(dtype).bits;
    if (bits < 8)
        c.fail(cat(what, " of type ", dtype_name(dtype), ": expected a type of whole bytes"));
    return static_cast<size_t>(bits / 8);
}

std::vector<int64_t> row_major_strides(const std::vector<int64_t>& shape) {
    std::vector<int64_t> st(shape.size(), 1);
    for (size_t d = shape.size(); d-- > 1;) st[d - 1] = st[d] * shape[d];
    return st;
}

}  // namespace

void op_compress(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& cond = c.input(1);
    if (cond.dtype != DType::Bool || cond.shape.size() != 1)
        c.fail(cat("condition of type ", dtype_name(cond.dtype), " and shape ",
                   shape_string(cond.shape), ": expected a 1-D bool tensor"));
    const size_t eb = element_bytes(c, x.dtype, "input");
    const bool has_axis = c.node.attr("axis") != nullptr;
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    AxisSplit s;
    if (has_axis)
        s = split_at(x.shape, normalize_axis(c, c.node.attr_int("axis", 0), rank));
    else
        s.axis = x.element_count();
    auto keep = cond.values<uint8_t>();
    if (static_cast<int64_t>(keep.size()) > s.axis)
        c.fail(cat("condition has ", keep.size(), " elements for an axis of ", s.axis));
    std::vector<int64_t> kept;
    for (size_t i = 0; i < keep.size(); ++i)
        if (keep[i]) kept.push_back(static_cast<int64_t>(i));
    std::vector<int64_t> shape;
    if (has_axis) {
        shape = x.shape;
        shape[static_cast<size_t>(normalize_axis(c, c.node.attr_int("axis", 0), rank))] =
            static_cast<int64_t>(kept.size());
    } else {
        shape = {static_cast<int64_t>(kept.size())};
    }
    Tensor y = make_uninitialized_tensor(x.dtype, shape);
    const std::byte* src = x.data.bytes().data();
    std::byte* dst = y.data.mutable_bytes().data();
    const size_t run = static_cast<size_t>(s.inner) * eb;
    size_t at = 0;
    for (int64_t o = 0; o < s.outer; ++o)
        for (int64_t k : kept) {
            std::memcpy(dst + at, src + static_cast<size_t>(o * s.axis + k) * run, run);
            at += run;
        }
    c.outputs.push_back(std::move(y));
}

void op_reverse_sequence(OpContext& c) {
    const Tensor& x = c.input(0);
    const Tensor& lens_t = c.input(1);
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    if (rank < 2) c.fail(cat("input of shape ", shape_string(x.shape), ": expected rank >= 2"));
    const int64_t batch_axis = normalize_axis(c, c.node.attr_int("batch_axis", 1), rank);
    const int64_t time_axis = normalize_axis(c, c.node.attr_int("time_axis", 0), rank);
    if (batch_axis == time_axis || batch_axis > 1 || time_axis > 1)
        c.fail(cat("batch_axis ", batch_axis, " and time_axis ", time_axis,
                   ": expected 0 and 1 in either order"));
    const int64_t batch = x.shape[static_cast<size_t>(batch_axis)];
    const int64_t steps = x.shape[static_cast<size_t>(time_axis)];
    auto lens = read_ints(c, lens_t);
    if (static_cast<int64_t>(lens.size()) != batch)
        c.fail(cat("sequence_lens has ", lens.size(), " elements for a batch of ", batch));
    for (size_t b = 0; b < lens.size(); ++b)
        if (lens[b] < 0 || lens[b] > steps)
            c.fail(cat("sequence_lens[", b, "] = ", lens[b], " is outside [0, ", steps, "]"));
    const size_t eb = element_bytes(c, x.dtype, "input");
    const auto st = row_major_strides(x.shape);
    const size_t run = static_cast<size_t>(st[1]) * eb;  // the elements after axes 0 and 1
    Tensor y = make_uninitialized_tensor(x.dtype, x.shape);
    const std::byte* src = x.data.bytes().data();
    std::byte* dst = y.data.mutable_bytes().data();
    for (int64_t b = 0; b < batch; ++b)
        for (int64_t t = 0; t < steps; ++t) {
            const int64_t from =
                t < lens[static_cast<size_t>(b)] ? lens[static_cast<size_t>(b)] - 1 - t : t;
            auto offset = [&](int64_t time) {
                return static_cast<size_t>(time_axis == 0 ? time * x.shape[1] + b
                                                          : b * x.shape[1] + time) *
                       run;
            };
            std::memcpy(dst + offset(t), src + offset(from), run);
        }
    c.outputs.push_back(std::move(y));
}

void op_center_crop_pad(OpContext& c) {
    const Tensor& x = c.input(0);
    auto sizes = read_ints(c, c.input(1));
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    std::vector<int64_t> axes =
        c.node.attr("axes") ? c.node.attr_ints("axes") : std::vector<int64_t>{};
    if (axes.empty())
        for (int64_t d = 0; d < rank; ++d) axes.push_back(d);
    if (sizes.size() != axes.size())
        c.fail(cat("shape has ", sizes.size(), " elements for ", axes.size(), " axes"));
    std::vector<int64_t> out_shape = x.shape, src_start(static_cast<size_t>(rank), 0),
                         dst_start(static_cast<size_t>(rank), 0), extent = x.shape;
    for (size_t i = 0; i < axes.size(); ++i) {
        const size_t a = static_cast<size_t>(normalize_axis(c, axes[i], rank));
        const int64_t in = x.shape[a], out = sizes[i];
        if (out < 0) c.fail(cat("shape[", i, "] = ", out, ": expected >= 0"));
        out_shape[a] = out;
        if (out < in) {
            src_start[a] = (in - out) / 2;
            extent[a] = out;
        } else {
            dst_start[a] = (out - in) / 2;
        }
    }
    const size_t eb = element_bytes(c, x.dtype, "input");
    Tensor y = make_tensor(x.dtype, out_shape);
    const auto in_st = row_major_strides(x.shape), out_st = row_major_strides(out_shape);
    int64_t count = 1;
    for (int64_t e : extent) count *= e;
    const std::byte* src = x.data.bytes().data();
    std::byte* dst = y.data.mutable_bytes().data();
    std::vector<int64_t> idx(static_cast<size_t>(rank), 0);
    for (int64_t n = 0; n < count; ++n) {
        int64_t from = 0, to = 0;
        for (size_t d = 0; d < idx.size(); ++d) {
            from += (src_start[d] + idx[d]) * in_st[d];
            to += (dst_start[d] + idx[d]) * out_st[d];
        }
        std::memcpy(dst + static_cast<size_t>(to) * eb, src + static_cast<size_t>(from) * eb, eb);
        for (size_t d = idx.size(); d-- > 0;) {
            if (++idx[d] < extent[d]) break;
            idx[d] = 0;
        }
    }
    c.outputs.push_back(std::move(y));
}

void op_tensor_scatter(OpContext& c) {
    const Tensor& cache = c.input(0);
    const Tensor& update = c.input(1);
    const int64_t rank = static_cast<int64_t>(cache.shape.size());
    if (rank < 2)
        c.fail(cat("past_cache of shape ", shape_string(cache.shape), ": expected rank >= 2"));
    const int64_t axis = normalize_axis(c, c.node.attr_int("axis", -2), rank);
    if (axis == 0) c.fail("axis 0 is the batch axis: expected another axis");
    const std::string mode = c.node.attr_string("mode", "linear");
    if (mode != "linear" && mode != "circular")
        c.fail(cat("mode '", mode, "': expected linear or circular"));
    if (update.dtype != cache.dtype || update.shape.size() != cache.shape.size())
        c.fail(cat("update of type ", dtype_name(update.dtype), " and shape ",
                   shape_string(update.shape), " for past_cache ", dtype_name(cache.dtype), " ",
                   shape_string(cache.shape)));
    for (int64_t d = 0; d < rank; ++d)
        if (d != axis &&
            update.shape[static_cast<size_t>(d)] != cache.shape[static_cast<size_t>(d)])
            c.fail(cat("update of shape ", shape_string(update.shape), " differs from past_cache ",
                       shape_string(cache.shape), " outside axis ", axis));
    const int64_t batch = cache.shape[0];
    std::vector<int64_t> starts(static_cast<size_t>(batch), 0);
    if (c.has_input(2)) starts = read_ints(c, *c.inputs[2]);
    if (static_cast<int64_t>(starts.size()) != batch)
        c.fail(cat("write_indices has ", starts.size(), " elements for a batch of ", batch));
    const AxisSplit cs = split_at(cache.shape, axis), us = split_at(update.shape, axis);
    const int64_t per_batch = cs.outer / batch;  // the axes between batch and `axis`
    const size_t eb = element_bytes(c, cache.dtype, "past_cache");
    const size_t run = static_cast<size_t>(cs.inner) * eb;
    Tensor y = make_uninitialized_tensor(cache.dtype, cache.shape);
    if (y.data.size())
        std::memcpy(y.data.mutable_bytes().data(), cache.data.bytes().data(), y.data.size());
    const std::byte* src = update.data.bytes().data();
    std::byte* dst = y.data.mutable_bytes().data();
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t start = starts[static_cast<size_t>(b)];
        for (int64_t s = 0; s < us.axis; ++s) {
            int64_t pos = start + s;
            if (mode == "circular") pos = ((pos % cs.axis) + cs.axis) % cs.axis;
            if (pos < 0 || pos >= cs.axis)
                c.fail(cat("write_indices[", b, "] = ", start, " writes ", us.axis,
                           " steps past the cache's ", cs.axis, " (mode linear)"));
            for (int64_t m = 0; m < per_batch; ++m) {
                const int64_t o = b * per_batch + m;
                std::memcpy(dst + static_cast<size_t>(o * cs.axis + pos) * run,
                            src + static_cast<size_t>(o * us.axis + s) * run, run);
            }
        }
    }
    c.outputs.push_back(std::move(y));
}

void op_unique(OpContext& c) {
    const Tensor& x = c.input(0);
    const bool sorted = c.node.attr_int("sorted", 1) != 0;
    const bool has_axis = c.node.attr("axis") != nullptr;
    const int64_t rank = static_cast<int64_t>(x.shape.size());
    int64_t axis = has_axis ? normalize_axis(c, c.node.attr_int("axis", 0), rank) : 0;
    AxisSplit s;
    if (has_axis)
        s = split_at(x.shape, axis);
    else
        s.axis = x.element_count();
    Tensor y, indices, inverse, counts;
    dispatch_numeric(c, x.dtype, [&](auto tag) {
        using T = decltype(tag);
        auto v = x.values<T>();
        // Slice k: the elements (o, k, i) for every outer o and inner i, in that order.
        auto less = [&](int64_t a, int64_t b) {
            for (int64_t o = 0; o < s.outer; ++o)
                for (int64_t i = 0; i < s.inner; ++i) {
                    T va = v[static_cast<size_t>((o * s.axis + a) * s.inner + i)];
                    T vb = v[static_cast<size_t>((o * s.axis + b) * s.inner + i)];
                    if (va < vb) return true;
                    if (vb < va) return false;
                }
            return false;
        };
        auto equal = [&](int64_t a, int64_t b) { return !less(a, b) && !less(b, a); };
        std::vector<int64_t> order(static_cast<size_t>(s.axis));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), less);
        // Groups of equal slices; each group's first occurrence is its smallest index.
        std::vector<int64_t> first, count, group_of(static_cast<size_t>(s.axis));
        for (size_t r = 0; r < order.size(); ++r) {
            if (r == 0 || !equal(order[r - 1], order[r])) {
                first.push_back(order[r]);
                count.push_back(0);
            }
            ++count.back();
            group_of[static_cast<size_t>(order[r])] = static_cast<int64_t>(first.size()) - 1;
        }
        // Output order: sorted groups, or by first occurrence.
        std::vector<int64_t> out_order(first.size());
        std::iota(out_order.begin(), out_order.end(), 0);
        if (!sorted)
            std::sort(out_order.begin(), out_order.end(),
                      [&](int64_t a, int64_t b) { return first[a] < first[b]; });
        std::vector<int64_t> position(first.size());
        for (size_t p = 0; p < out_order.size(); ++p)
            position[static_cast<size_t>(out_order[p])] = static_cast<int64_t>(p);
        const int64_t u = static_cast<int64_t>(first.size());
        std::vector<int64_t> y_shape = has_axis ? x.shape : std::vector<int64_t>{u};
        if (has_axis) y_shape[static_cast<size_t>(axis)] = u;
        y = make_uninitialized_tensor(x.dtype, y_shape);
        auto yo = y.mutable_values<T>();
        for (int64_t o = 0; o < s.outer; ++o)
            for (int64_t p = 0; p < u; ++p)
                for (int64_t i = 0; i < s.inner; ++i)
                    yo[static_cast<size_t>((o * u + p) * s.inner + i)] = v[static_cast<size_t>(
                        (o * s.axis +
                         first[static_cast<size_t>(out_order[static_cast<size_t>(p)])]) *
                            s.inner +
                        i)];
        indices = make_uninitialized_tensor(DType::I64, {u});
        counts = make_uninitialized_tensor(DType::I64, {u});
        for (int64_t p = 0; p < u; ++p) {
            indices.mutable_values<int64_t>()[static_cast<size_t>(p)] =
                first[static_cast<size_t>(out_order[static_cast<size_t>(p)])];
            counts.mutable_values<int64_t>()[static_cast<size_t>(p)] =
                count[static_cast<size_t>(out_order[static_cast<size_t>(p)])];
        }
        inverse = make_uninitialized_tensor(DType::I64, {s.axis});
        for (int64_t k = 0; k < s.axis; ++k)
            inverse.mutable_values<int64_t>()[static_cast<size_t>(k)] =
                position[static_cast<size_t>(group_of[static_cast<size_t>(k)])];
    });
    // Only the outputs the node names (the optional ones may be left off).
    Tensor all[] = {std::move(y), std::move(indices), std::move(inverse), std::move(counts)};
    for (size_t k = 0; k < 4 && k < c.node.outputs.size(); ++k)
        c.outputs.push_back(std::move(all[k]));
}

}  // namespace ep::rt
