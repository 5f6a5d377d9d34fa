// Loop and Scan: control flow whose body is a subgraph, run through the executor's
// SubgraphRunner (the mechanism If uses), so the body reads values of every enclosing
// scope by name. Each iteration is one run of the body; nothing runs in parallel across
// iterations, so results are the body's own and the same for any thread count.
//   Loop(M?, cond?, v_initial[N]; body) -> v_final[N], scan_outputs[K]
//       body(iteration_num: i64 [], cond: bool [], v[N]) -> cond, v_next[N], scan[K]
//       runs while (M absent or i < M) and (cond absent or cond); with cond absent the
//       body's cond output is ignored (ONNX). Carried values may change shape from one
//       iteration to the next; each scan output stacks its per-iteration values along a
//       new axis 0 (every iteration's value must have one shape). Zero iterations: v_final
//       are the initial values and each scan output has 0 rows and the body's declared
//       shape (rank 1 when that is not fully known). Neither M nor cond: refused, it would
//       never end.
//   Scan (opset >= 9)(state_initial[N], scan_input[M]; body, num_scan_inputs = M,
//           scan_input_axes, scan_input_directions, scan_output_axes,
//           scan_output_directions) -> state_final[N], scan_output[K]
//       body(state[N], slice[M]) -> state_next[N], out_slice[K]; iteration t reads slice t
//       of every scan input along its axis (slice S-1-t with direction 1); scan output k
//       stacks its slices along its axis (negative: counted in the output's rank), in
//       iteration order, or reversed with direction 1. Every scan input has the same
//       length S along its axis.
//   Scan (opset 8)(sequence_lens?, state_initial[N], scan_input[M]; body, num_scan_inputs,
//           directions) -> state_final[N], scan_output[K]
//       the same per batch item b: states and scan inputs carry a leading batch axis, the
//       scan axis is 1, item b runs sequence_lens[b] iterations (all S when absent), and
//       scan outputs [B, S, ...] hold zeros past an item's length.
#include <algorithm>
#include <cstring>
#include <optional>

#include "runtime-check/ops/ops.h"

namespace ep::rt {
namespace {

const Graph& body_graph(const OpContext& c) {
    const Attribute* a = c.node.attr("body");
    if (!a || a->graphs.empty()) c.fail("has no body graph");
    if (!c.run_subgraph) c.fail("subgraphs cannot run here");
    return a->graphs[0];
}

size_t whole_bytes(const OpContext& c, const Tensor& t, const char* what) {
    const int bits = traits(t.dtype).bits;
    if (bits < 8 || t.dtype == DType::String)
        c.fail(cat(what, " of type ", dtype_name(t.dtype),
                   ": Loop and Scan slice and stack fixed-size types of whole bytes only"));
    return static_cast<size_t>(bits / 8);
}

int64_t product(std::span<const int64_t> dims) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
}

// Slice `index` of `t` along `axis`, the axis removed.
Tensor slice_along(const OpContext& c, const Tensor& t, int64_t axis, int64_t index) {
    const size_t esize = whole_bytes(c, t, "scan input");
    const auto r = static_cast<size_t>(axis);
    std::vector<int64_t> shape = t.shape;
    const int64_t n = shape[r];
    shape.erase(shape.begin() + axis);
    Tensor out = make_uninitialized_tensor(t.dtype, shape);
    const int64_t outer = product(std::span(t.shape).first(r));
    const size_t inner = static_cast<size_t>(product(std::span(t.shape).subspan(r + 1))) * esize;
    const std::byte* src = t.data.bytes().data();
    std::byte* dst = out.data.mutable_bytes().data();
    for (int64_t o = 0; o < outer; ++o)
        std::memcpy(dst + static_cast<size_t>(o) * inner,
                    src + (static_cast<size_t>(o * n + index)) * inner, inner);
    return out;
}

// The body's declared shape of output `index`, when every dimension is known.
std::optional<std::vector<int64_t>> declared_shape(const Graph& body, size_t index) {
    const ValueInfo& v = body.outputs[index];
    if (!v.type || !v.type->is_tensor || !v.type->shape) return std::nullopt;
    std::vector<int64_t> dims;
    for (const Dim& d : *v.type->shape) {
        if (!d.value) return std::nullopt;
        dims.push_back(*d.value);
    }
    return dims;
}

// Per-iteration values of body output `index` stacked along a new `axis` (reversed when
// `reverse`), `length` slices (zeros past the values given). With no value at all, a
// zero-filled [length] tensor of the body's declared type and shape.
Tensor stack(const OpContext& c, const Graph& body, size_t index, std::vector<Tensor>& slices,
             int64_t axis, bool reverse, int64_t length) {
    const std::string& name = body.outputs[index].name;
    if (slices.empty()) {
        const ValueInfo& v = body.outputs[index];
        DType dtype = v.type && v.type->elem != DType::Undefined ? v.type->elem : DType::F32;
        std::vector<int64_t> shape = declared_shape(body, index).value_or(std::vector<int64_t>{});
        axis = axis < 0 ? axis + static_cast<int64_t>(shape.size()) + 1 : axis;
        if (axis < 0 || axis > static_cast<int64_t>(shape.size())) axis = 0;
        shape.insert(shape.begin() + axis, length);
        return make_tensor(dtype, shape);
    }
    const Tensor& first = slices.front();
    for (size_t i = 1; i < slices.size(); ++i)
        if (slices[i].dtype != first.dtype || slices[i].shape != first.shape)
            c.fail(cat("scan output '", name, "' is ", dtype_name(first.dtype), " ",
                       shape_string(first.shape), " in iteration 0 but ",
                       dtype_name(slices[i].dtype), " ", shape_string(slices[i].shape),
                       " in iteration ", i, ": scan outputs must keep one shape"));
    const auto rank = static_cast<int64_t>(first.shape.size());
    if (axis < -(rank + 1) || axis > rank)
        c.fail(cat("scan output axis ", axis, " is out of range for scan output '", name,
                   "' of rank ", rank + 1));
    if (axis < 0) axis += rank + 1;
    const size_t esize = whole_bytes(c, first, "scan output");
    std::vector<int64_t> shape = first.shape;
    shape.insert(shape.begin() + axis, length);
    Tensor out = make_tensor(first.dtype, shape);
    const int64_t outer = product(std::span(first.shape).first(static_cast<size_t>(axis)));
    const size_t inner =
        static_cast<size_t>(product(std::span(first.shape).subspan(static_cast<size_t>(axis)))) *
        esize;
    std::byte* dst = out.data.mutable_bytes().data();
    const auto count = static_cast<int64_t>(slices.size());
    for (int64_t i = 0; i < count; ++i) {
        const int64_t at = reverse ? count - 1 - i : i;
        const std::byte* src = slices[static_cast<size_t>(i)].data.bytes().data();
        for (int64_t o = 0; o < outer; ++o)
            std::memcpy(dst + static_cast<size_t>(o * length + at) * inner,
                        src + static_cast<size_t>(o) * inner, inner);
    }
    return out;
}

Tensor scalar_i64(int64_t v) {
    Tensor t = make_uninitialized_tensor(DType::I64, {});
    t.mutable_values<int64_t>()[0] = v;
    return t;
}

Tensor scalar_bool(bool v) {
    Tensor t = make_uninitialized_tensor(DType::Bool, {});
    t.mutable_values<uint8_t>()[0] = v ? 1 : 0;
    return t;
}

bool read_cond(const OpContext& c, const Tensor& t, const char* what) {
    if (t.element_count() != 1)
        c.fail(cat(what, " must have one element, found shape ", shape_string(t.shape)));
    return read_scalar(c, t) != 0.0;
}

// Reads the integer list attribute `name` of `count` entries (default all 0).
std::vector<int64_t> per_value_attr(const OpContext& c, const char* name, size_t count) {
    if (!c.node.attr(name)) return std::vector<int64_t>(count, 0);
    std::vector<int64_t> v = c.node.attr_ints(name);
    if (v.size() != count)
        c.fail(cat("attribute ", name, " has ", v.size(), " entries, expected ", count));
    return v;
}

// The iterations of a Scan over `scan_inputs` (axes and directions given): returns the
// final states, and each scan output's per-iteration slices in `outs`.
std::vector<Tensor> run_scan(const OpContext& c, const Graph& body, std::vector<Tensor> states,
                             const std::vector<const Tensor*>& scan_inputs,
                             std::span<const int64_t> axes, std::span<const int64_t> directions,
                             int64_t length, std::vector<std::vector<Tensor>>& outs) {
    const size_t n = states.size(), k = outs.size();
    std::vector<Tensor> args;
    for (int64_t t = 0; t < length; ++t) {
        args.clear();
        for (auto& s : states) args.push_back(std::move(s));
        for (size_t j = 0; j < scan_inputs.size(); ++j)
            args.push_back(
                slice_along(c, *scan_inputs[j], axes[j], directions[j] ? length - 1 - t : t));
        std::vector<Tensor> result = (*c.run_subgraph)(body, args);
        if (result.size() != n + k)
            c.fail(cat("body produced ", result.size(), " outputs, expected ", n + k));
        for (size_t i = 0; i < n; ++i) states[i] = std::move(result[i]);
        for (size_t i = 0; i < k; ++i) outs[i].push_back(std::move(result[n + i]));
    }
    return states;
}

int64_t normalized_axis(const OpContext& c, int64_t axis, int64_t rank, const char* what) {
    if (axis < -rank || axis >= rank)
        c.fail(cat(what, " axis ", axis, " is out of range for rank ", rank));
    return axis < 0 ? axis + rank : axis;
}

void scan_opset8(OpContext& c, const Graph& body, size_t m) {
    if (c.input_count() < 1 + m)
        c.fail(cat("has ", c.input_count(), " inputs, expected at least ", 1 + m));
    const size_t n = c.input_count() - 1 - m, k = body.outputs.size() - n;
    const std::vector<int64_t> directions = per_value_attr(c, "directions", m);
    std::vector<const Tensor*> scans;
    for (size_t j = 0; j < m; ++j) scans.push_back(&c.input(1 + n + j));
    const std::string& first = c.node.inputs[1 + n];
    if (scans[0]->shape.size() < 2)
        c.fail(cat("scan input '", first, "' has shape ", shape_string(scans[0]->shape),
                   ", expected [batch, sequence, ...]"));
    const int64_t batch = scans[0]->shape[0], length = scans[0]->shape[1];
    for (size_t j = 0; j < m; ++j)
        if (scans[j]->shape.size() < 2 || scans[j]->shape[0] != batch ||
            scans[j]->shape[1] != length)
            c.fail(cat("scan input '", c.node.inputs[1 + n + j], "' has shape ",
                       shape_string(scans[j]->shape), ", expected [", batch, ", ", length,
                       ", ...] like '", first, "'"));
    for (size_t i = 0; i < n; ++i)
        if (c.input(1 + i).shape.empty() || c.input(1 + i).shape[0] != batch)
            c.fail(cat("initial state '", c.node.inputs[1 + i], "' has shape ",
                       shape_string(c.input(1 + i).shape), ", expected batch ", batch, " first"));
    std::vector<int64_t> lengths(static_cast<size_t>(batch), length);
    if (c.has_input(0)) {
        lengths = read_ints(c, c.input(0));
        if (static_cast<int64_t>(lengths.size()) != batch)
            c.fail(cat("sequence_lens has ", lengths.size(), " entries, expected ", batch));
        for (int64_t len : lengths)
            if (len < 0 || len > length)
                c.fail(cat("sequence length ", len, " is outside [0, ", length, "]"));
    }
    std::vector<std::vector<Tensor>> final_states(n), stacked(k);
    const std::vector<int64_t> axes(m, 0);
    for (int64_t b = 0; b < batch; ++b) {
        std::vector<Tensor> states;
        for (size_t i = 0; i < n; ++i) states.push_back(slice_along(c, c.input(1 + i), 0, b));
        std::vector<Tensor> item;  // this item's scan inputs, [length_b, ...]
        std::vector<const Tensor*> item_ptrs;
        const int64_t len = lengths[static_cast<size_t>(b)];
        for (const Tensor* s : scans) {
            Tensor row = slice_along(c, *s, 0, b);
            if (len < length) {  // the first len steps: a prefix of the bytes
                std::vector<int64_t> shape = row.shape;
                shape[0] = len;
                Tensor cut = make_uninitialized_tensor(row.dtype, shape);
                std::memcpy(cut.data.mutable_bytes().data(), row.data.bytes().data(),
                            cut.data.size());
                row = std::move(cut);
            }
            item.push_back(std::move(row));
        }
        for (const auto& t : item) item_ptrs.push_back(&t);
        std::vector<std::vector<Tensor>> outs(k);
        states = run_scan(c, body, std::move(states), item_ptrs, axes, directions, len, outs);
        for (size_t i = 0; i < n; ++i) final_states[i].push_back(std::move(states[i]));
        for (size_t i = 0; i < k; ++i) {
            Tensor padded = stack(c, body, n + i, outs[i], 0, false, length);
            stacked[i].push_back(std::move(padded));
        }
    }
    for (size_t i = 0; i < n; ++i)
        c.outputs.push_back(stack(c, body, i, final_states[i], 0, false, batch));
    for (size_t i = 0; i < k; ++i)
        c.outputs.push_back(stack(c, body, n + i, stacked[i], 0, false, batch));
}

}  // namespace

void op_loop(OpContext& c) {
    const Graph& body = body_graph(c);
    if (c.input_count() < 2)
        c.fail(cat("has ", c.input_count(), " inputs, expected at least 2 (M, cond)"));
    const size_t n = c.input_count() - 2;
    if (body.inputs.size() != 2 + n)
        c.fail(cat("body takes ", body.inputs.size(), " inputs, expected ", 2 + n,
                   " (iteration_num, cond and the ", n, " loop-carried values)"));
    if (body.outputs.size() < 1 + n)
        c.fail(cat("body produces ", body.outputs.size(), " outputs, expected at least ", 1 + n,
                   " (cond and the ", n, " loop-carried values)"));
    const size_t k = body.outputs.size() - 1 - n;
    std::optional<int64_t> trips;
    if (c.has_input(0)) {
        const Tensor& m = c.input(0);
        if (m.element_count() != 1)
            c.fail(cat("M must have one element, found shape ", shape_string(m.shape)));
        trips = read_ints(c, m)[0];
    }
    const bool has_cond = c.has_input(1);
    bool cond = has_cond ? read_cond(c, c.input(1), "cond") : true;
    if (!trips && !has_cond)
        c.fail("has neither a trip count M nor a condition: it would never end");
    std::vector<Tensor> carried;
    for (size_t i = 0; i < n; ++i) carried.push_back(c.input(2 + i));
    std::vector<std::vector<Tensor>> scans(k);
    std::vector<Tensor> args;
    for (int64_t i = 0; (!trips || i < *trips) && cond; ++i) {
        args.clear();
        args.push_back(scalar_i64(i));
        args.push_back(scalar_bool(cond));
        for (auto& v : carried) args.push_back(std::move(v));
        std::vector<Tensor> result = (*c.run_subgraph)(body, args);
        if (result.size() != 1 + n + k)
            c.fail(cat("body produced ", result.size(), " outputs, expected ", 1 + n + k));
        if (has_cond) cond = read_cond(c, result[0], "the body's cond output");
        for (size_t j = 0; j < n; ++j) carried[j] = std::move(result[1 + j]);
        for (size_t j = 0; j < k; ++j) scans[j].push_back(std::move(result[1 + n + j]));
    }
    for (auto& v : carried) c.outputs.push_back(std::move(v));
    for (size_t j = 0; j < k; ++j) {
        const auto rows = static_cast<int64_t>(scans[j].size());
        c.outputs.push_back(stack(c, body, 1 + n + j, scans[j], 0, false, rows));
    }
}

void op_scan(OpContext& c) {
    const Graph& body = body_graph(c);
    const int64_t m_attr = c.node.attr_int("num_scan_inputs", -1);
    if (m_attr < 1) c.fail("attribute num_scan_inputs must be at least 1");
    const auto m = static_cast<size_t>(m_attr);
    if (c.opset < 9) return scan_opset8(c, body, m);
    if (c.input_count() < m)
        c.fail(cat("has ", c.input_count(), " inputs, fewer than num_scan_inputs ", m));
    const size_t n = c.input_count() - m;
    if (body.inputs.size() != n + m)
        c.fail(cat("body takes ", body.inputs.size(), " inputs, expected ", n + m));
    if (body.outputs.size() < n)
        c.fail(cat("body produces ", body.outputs.size(), " outputs, expected at least ", n));
    const size_t k = body.outputs.size() - n;
    std::vector<int64_t> in_axes = per_value_attr(c, "scan_input_axes", m);
    const std::vector<int64_t> in_dirs = per_value_attr(c, "scan_input_directions", m);
    const std::vector<int64_t> out_axes = per_value_attr(c, "scan_output_axes", k);
    const std::vector<int64_t> out_dirs = per_value_attr(c, "scan_output_directions", k);
    std::vector<const Tensor*> scans;
    int64_t length = -1;
    for (size_t j = 0; j < m; ++j) {
        const Tensor& s = c.input(n + j);
        in_axes[j] =
            normalized_axis(c, in_axes[j], static_cast<int64_t>(s.shape.size()), "scan input");
        const int64_t len = s.shape[static_cast<size_t>(in_axes[j])];
        if (length >= 0 && len != length)
            c.fail(cat("scan input '", c.node.inputs[n + j], "' has length ", len, " along axis ",
                       in_axes[j], ", the first scan input ", length));
        length = len;
        scans.push_back(&s);
    }
    std::vector<Tensor> states;
    for (size_t i = 0; i < n; ++i) states.push_back(c.input(i));
    std::vector<std::vector<Tensor>> outs(k);
    states = run_scan(c, body, std::move(states), scans, in_axes, in_dirs, length, outs);
    for (auto& s : states) c.outputs.push_back(std::move(s));
    for (size_t i = 0; i < k; ++i)
        c.outputs.push_back(stack(c, body, n + i, outs[i], out_axes[i], out_dirs[i] != 0, length));
}

}  // namespace ep::rt
