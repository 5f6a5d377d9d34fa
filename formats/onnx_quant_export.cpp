#include "formats/onnx_quant_export.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

namespace ep {
namespace {

constexpr int64_t kQdqOpset = 21;
constexpr const char* kMs = "com.microsoft";
// MatMulNBits accuracy_level 1: f32 activations (ORT's levels: 0 unset, 1 fp32, 2 fp16,
// 3 bf16, 4 int8). Written explicitly so no reader falls back to another default.
constexpr int64_t kNBitsAccuracyFp32 = 1;
// MatMulNBits block for an int8 per-channel weight: the row's one f32 scale repeated in
// every block. ONNX Runtime wants a power of two >= 16; its kernels take blocks up to 256.
constexpr int64_t kNBitsChannelBlock = 128;

Node make_node(std::string name, std::string op, std::vector<std::string> in,
               std::vector<std::string> out, std::vector<Attribute> attrs = {},
               std::string domain = {}) {
    Node n;
    n.name = std::move(name);
    n.op_type = std::move(op);
    n.domain = std::move(domain);
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    n.attributes = std::move(attrs);
    return n;
}

Tensor bytes_tensor(std::string name, DType dt, std::vector<int64_t> shape,
                    std::vector<std::byte> bytes) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dt;
    t.shape = std::move(shape);
    t.data = TensorData::owned(std::move(bytes));
    return t;
}

template <typename T>
Tensor values_tensor(std::string name, DType dt, std::vector<int64_t> shape,
                     const std::vector<T>& v) {
    std::vector<std::byte> bytes(v.size() * sizeof(T));
    if (!v.empty()) std::memcpy(bytes.data(), v.data(), bytes.size());
    return bytes_tensor(std::move(name), dt, std::move(shape), std::move(bytes));
}

// Value and node names in use anywhere in the model, to make fresh ones.
struct Names {
    std::unordered_set<std::string> used;
    std::string fresh(const std::string& base) {
        std::string n = base;
        for (int i = 1; used.count(n); ++i) n = cat(base, "_", i);
        used.insert(n);
        return n;
    }
};

Names collect_names(const Model& m) {
    Names names;
    for_each_graph(m.graph, [&](const Graph& g) {
        for (const auto& v : g.inputs) names.used.insert(v.name);
        for (const auto& v : g.outputs) names.used.insert(v.name);
        for (const auto& t : g.initializers) names.used.insert(t.name);
        for (const auto& n : g.nodes) {
            names.used.insert(n.name);
            for (const auto& o : n.outputs) names.used.insert(o);
        }
    });
    return names;
}

// The stored matrix of an encoded tensor.
struct Stored {
    const Tensor* t = nullptr;
    Encoding e;
    std::span<const std::byte> data;
    int64_t rows = 0, cols = 0, blocks = 0;
    const QSchemeTraits* tr = nullptr;

    [[nodiscard]] int code(int64_t r, int64_t c) const {
        return row_code(e, data, rows, cols, r, c);
    }
    [[nodiscard]] QParams params(int64_t r, int64_t b) const {
        return row_qparams(e, data, rows, cols, r, b);
    }
};

Stored stored_of(const Tensor& t) {
    const std::string what = cat("tensor '", t.name, "'");
    check_encoding(t.encoding, what);
    if (t.encoding.scheme == QScheme::Int4Min || traits(t.encoding.scheme).super_block != 0)
        throw InputError(cat(what, ": encoding ", encoding_name(t.encoding),
                             " (llama.cpp's block form) has no ONNX form: MatMulNBits and "
                             "DequantizeLinear take integer zero points; write .epk or .gguf"));
    t.check_consistent();
    auto dims = encoded_dims(t.encoding, t.shape, what);
    Stored s;
    s.t = &t;
    s.e = t.encoding;
    s.data = t.data.bytes();
    s.rows = dims.rows;
    s.cols = dims.cols;
    s.tr = &traits(t.encoding.scheme);
    s.blocks = s.tr->grouped ? blocks_per_row(s.e, s.cols) : 1;
    return s;
}

// Codes (in element order) packed as `dt`: int4/uint4 two a byte, low nibble first.
std::vector<std::byte> pack_codes(const std::vector<int>& codes, DType dt) {
    if (dt == DType::I4 || dt == DType::U4) {
        std::vector<std::byte> out((codes.size() + 1) / 2, std::byte{0});
        for (size_t i = 0; i < codes.size(); ++i)
            out[i / 2] |= static_cast<std::byte>((codes[i] & 0xF) << (i % 2 ? 4 : 0));
        return out;
    }
    std::vector<std::byte> out(codes.size());
    for (size_t i = 0; i < codes.size(); ++i) out[i] = static_cast<std::byte>(codes[i] & 0xFF);
    return out;
}

DType code_dtype(const Stored& s) {
    if (s.tr->bits == 4) return s.tr->symmetric ? DType::I4 : DType::U4;
    return s.tr->symmetric ? DType::I8 : DType::U8;
}

// Quantized codes + DequantizeLinear (opset 21) producing the tensor's own name. With
// `opaque` (the tensor feeds a MatMul or Gemm) the DequantizeLinear output goes through a
// Reshape to the tensor's own shape: ONNX Runtime's default session fuses a
// DequantizeLinear that feeds a MatMul/Gemm directly into MatMulNBits with int8
// activations (session.qdq_matmulnbits_accuracy_level, default 4), which would compute
// other numbers than the encoded model; it leaves DequantizeLinear -> Reshape -> MatMul
// in f32 (verified with ONNX Runtime 1.31).
void add_dequantize(const Tensor& t, bool opaque, Names& names, std::vector<Tensor>& inits,
                    std::vector<Node>& nodes) {
    const Stored s = stored_of(t);
    const DType dt = code_dtype(s);
    const bool axis0 = s.e.axis == 0;
    const int64_t rows = s.rows, cols = s.cols, nb = s.blocks;
    std::vector<int> codes(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
            codes[static_cast<size_t>(axis0 ? c * rows + r : r * cols + c)] = s.code(r, c);
    const std::string xq = names.fresh(t.name + "_quantized");
    const std::string xs = names.fresh(t.name + "_scale");
    std::vector<std::string> dq_in{xq, xs};
    std::vector<Attribute> attrs;
    std::vector<int64_t> x_shape, s_shape;
    std::vector<float> scales;
    std::vector<int> zps;
    if (!s.tr->grouped) {  // int8c: per channel, on the logical shape ([rows, cols] past axis 1)
        x_shape = s.e.axis > 1 ? std::vector<int64_t>{rows, cols} : t.shape;
        s_shape = {rows};
        for (int64_t r = 0; r < rows; ++r) scales.push_back(s.params(r, 0).scale);
        attrs.push_back(int_attr("axis", axis0 ? 1 : 0));
    } else if (axis0) {  // [K, N]: blocks down the columns
        x_shape = {cols, rows};
        s_shape = {nb, rows};
        scales.resize(static_cast<size_t>(nb * rows));
        zps.resize(scales.size());
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t b = 0; b < nb; ++b) {
                QParams p = s.params(r, b);
                scales[static_cast<size_t>(b * rows + r)] = p.scale;
                zps[static_cast<size_t>(b * rows + r)] = p.zero;
            }
        attrs = {int_attr("axis", 0), int_attr("block_size", s.e.group)};
    } else {  // [rows, cols]: blocks along the rows
        x_shape = {rows, cols};
        s_shape = {rows, nb};
        for (int64_t r = 0; r < rows; ++r)
            for (int64_t b = 0; b < nb; ++b) {
                QParams p = s.params(r, b);
                scales.push_back(p.scale);
                zps.push_back(p.zero);
            }
        attrs = {int_attr("axis", 1), int_attr("block_size", s.e.group)};
    }
    inits.push_back(bytes_tensor(xq, dt, x_shape, pack_codes(codes, dt)));
    inits.push_back(values_tensor(xs, DType::F32, s_shape, scales));
    if (!s.tr->symmetric) {
        const std::string xz = names.fresh(t.name + "_zero_point");
        inits.push_back(bytes_tensor(xz, dt, s_shape, pack_codes(zps, dt)));
        dq_in.push_back(xz);
    }
    const bool reshape =
        opaque || ((s.tr->grouped || s.e.axis > 1) && !axis0 && t.shape.size() != 2);
    const std::string dq_out = reshape ? names.fresh(t.name + "_dequantized") : t.name;
    nodes.push_back(make_node(names.fresh(t.name + "_DequantizeLinear"), "DequantizeLinear", dq_in,
                              {dq_out}, attrs));
    if (reshape) {
        const std::string shape_name = names.fresh(t.name + "_shape");
        inits.push_back(
            values_tensor(shape_name, DType::I64, {static_cast<int64_t>(t.shape.size())}, t.shape));
        nodes.push_back(
            make_node(names.fresh(t.name + "_Reshape"), "Reshape", {dq_out, shape_name}, {t.name}));
    }
}

// MatMulNBits inputs for one weight: B, scales and (asymmetric) zero points.
struct NBitsWeight {
    std::string b, scales, zero_points;
    int64_t k = 0, n = 0, bits = 0, block = 0;
};

NBitsWeight add_nbits_weight(const Tensor& t, Names& names, std::vector<Tensor>& inits) {
    const Stored s = stored_of(t);
    NBitsWeight w;
    w.k = s.cols;
    w.n = s.rows;
    w.bits = s.tr->bits;
    // int8 per channel: blocks of kNBitsChannelBlock (one block of the next power of two
    // >= 16 for a shorter row), each with the row's scale.
    w.block = s.tr->grouped
                  ? s.e.group
                  : std::min<int64_t>(kNBitsChannelBlock,
                                      static_cast<int64_t>(std::bit_ceil(
                                          static_cast<uint64_t>(std::max<int64_t>(w.k, 16)))));
    const int64_t nb = s.tr->grouped ? s.blocks : (w.k + w.block - 1) / w.block;
    const int64_t blob = w.block * w.bits / 8, offset = int64_t{1} << (w.bits - 1);
    std::vector<int> codes;
    codes.reserve(static_cast<size_t>(w.n * nb * w.block));
    std::vector<float> scales;
    std::vector<int> zps;
    for (int64_t r = 0; r < w.n; ++r)
        for (int64_t b = 0; b < nb; ++b) {
            QParams p = s.params(r, s.tr->grouped ? b : 0);
            scales.push_back(p.scale);
            zps.push_back(p.zero);
            for (int64_t j = 0; j < w.block; ++j) {
                const int64_t c = b * w.block + j;
                // Past K: the padding code of 0.0 (ORT never reads it).
                const int q = c < w.k ? s.code(r, c) : (s.tr->symmetric ? 0 : p.zero);
                codes.push_back(s.tr->symmetric ? q + static_cast<int>(offset) : q);
            }
        }
    const DType packed = w.bits == 4 ? DType::U4 : DType::U8;  // packing only
    w.b = names.fresh(t.name + "_nbits");
    inits.push_back(bytes_tensor(w.b, DType::U8, {w.n, nb, blob}, pack_codes(codes, packed)));
    w.scales = names.fresh(t.name + "_nbits_scales");
    inits.push_back(values_tensor(w.scales, DType::F32, {w.n * nb}, scales));
    if (!s.tr->symmetric) {
        const int64_t per_row = (nb * w.bits + 7) / 8;
        std::vector<std::byte> z(static_cast<size_t>(w.n * per_row), std::byte{0});
        for (int64_t r = 0; r < w.n; ++r)
            for (int64_t b = 0; b < nb; ++b) {
                const int v = zps[static_cast<size_t>(r * nb + b)];
                if (w.bits == 4)
                    z[static_cast<size_t>(r * per_row + b / 2)] |=
                        static_cast<std::byte>((v & 0xF) << (b % 2 ? 4 : 0));
                else
                    z[static_cast<size_t>(r * per_row + b)] = static_cast<std::byte>(v & 0xFF);
            }
        w.zero_points = names.fresh(t.name + "_nbits_zero_points");
        inits.push_back(bytes_tensor(w.zero_points, DType::U8, {w.n * per_row}, std::move(z)));
    }
    return w;
}

// Whether `node` (MatMul or Gemm) can become MatMulNBits with weight `w`.
bool nbits_eligible(const Node& node, const Tensor& w) {
    if (!node.domain.empty() || node.inputs.size() < 2 || node.outputs.empty() ||
        node.outputs[0].empty() || w.shape.size() != 2)
        return false;
    if (node.op_type == "MatMul") return w.encoding.axis == 0;
    if (node.op_type != "Gemm") return false;
    const int64_t tb = node.attr_int("transB", 0) != 0 ? 1 : 0;
    const bool has_c = node.inputs.size() > 2 && !node.inputs[2].empty();
    return w.encoding.axis == tb && node.attr_int("transA", 0) == 0 &&
           node.attr_float("alpha", 1.0f) == 1.0f &&
           (!has_c || node.attr_float("beta", 1.0f) == 1.0f);
}

// Counts reads of each name by the nodes of `g` and all their subgraphs, and graph outputs.
void count_reads(const Graph& g, std::unordered_map<std::string, int>& reads) {
    for (const auto& v : g.outputs) ++reads[v.name];
    for (const auto& n : g.nodes) {
        for (const auto& in : n.inputs) ++reads[in];
        for (const auto& a : n.attributes)
            for (const auto& sub : a.graphs) count_reads(sub, reads);
    }
}

void axes_to_input(Node& node, const char* attr_name, size_t index, Names& names, Graph& g) {
    auto it = std::find_if(node.attributes.begin(), node.attributes.end(),
                           [&](const Attribute& a) { return a.name == attr_name; });
    if (it == node.attributes.end()) return;
    std::vector<int64_t> v = it->ints;
    node.attributes.erase(it);
    const std::string name =
        names.fresh(cat(node.name.empty() ? node.op_type : node.name, "_", attr_name));
    g.initializers.push_back(values_tensor(name, DType::I64, {static_cast<int64_t>(v.size())}, v));
    if (node.inputs.size() < index) node.inputs.resize(index);
    node.inputs.insert(node.inputs.begin() + static_cast<std::ptrdiff_t>(index), name);
}

// Raises the default-domain opset from 13 or later to `target` (<= 21), moving the
// attributes that became inputs. Sources below 13 are converted by the ONNX library's
// version converter when read (read_onnx's min_opset, formats/onnx_io.h).
void raise_opset(Model& m, int64_t target, Names& names) {
    const int64_t src = m.opset("");
    m.ir_version = std::max<int64_t>(m.ir_version, 10);
    if (src >= target) return;
    if (src != 0 && src < kMinExportOpset)
        throw InputError(cat("the model's opset is ", src, ": quantized ONNX export raises it to ",
                             target, " and needs a source at opset ", kMinExportOpset,
                             " or later (edgepack compress raises it with the ONNX version "
                             "converter when a recipe writes a quantized .onnx)"));
    static const std::unordered_set<std::string> reduce18{
        "ReduceMean", "ReduceMax", "ReduceMin",    "ReduceProd",     "ReduceSumSquare",
        "ReduceL1",   "ReduceL2",  "ReduceLogSum", "ReduceLogSumExp"};
    for_each_graph(m.graph, [&](Graph& g) {
        for (auto& node : g.nodes) {
            if (!node.domain.empty() && node.domain != "ai.onnx") continue;
            if (src < 18 && reduce18.count(node.op_type)) axes_to_input(node, "axes", 1, names, g);
        }
    });
    bool found = false;
    for (auto& o : m.opset_imports)
        if (o.domain.empty() || o.domain == "ai.onnx") {
            o.version = target;
            found = true;
        }
    if (!found) m.opset_imports.push_back({"", target});
}

}  // namespace

bool has_encoded_tensors(const Model& model) {
    bool any = false;
    for_each_graph(model.graph, [&](const Graph& g) {
        for (const auto& t : g.initializers) any = any || t.is_encoded();
    });
    return any;
}

Model export_quantized_onnx(const Model& model, const std::string& mode) {
    if (mode != "matmulnbits" && mode != "qdq")
        throw InputError(cat("onnx.quantized = '", mode, "': expected matmulnbits or qdq"));
    Model m = model;
    Names names = collect_names(m);
    bool need_dq = false, used_nbits = false;
    for_each_graph(m.graph, [&](Graph& g) {
        if (std::none_of(g.initializers.begin(), g.initializers.end(),
                         [](const Tensor& t) { return t.is_encoded(); }))
            return;  // before anything is moved out of g.initializers
        std::unordered_map<std::string, Tensor> encoded;
        std::vector<Tensor> kept;
        std::vector<std::string> order;  // encoded names in file order
        for (auto& t : g.initializers) {
            if (t.is_encoded()) {
                order.push_back(t.name);
                encoded.emplace(t.name, std::move(t));
            } else {
                kept.push_back(std::move(t));
            }
        }
        std::vector<Tensor> inits;
        std::vector<Node> nodes;
        std::unordered_map<std::string, NBitsWeight> nbits;
        for (auto& node : g.nodes) {
            auto it = node.inputs.size() > 1 ? encoded.find(node.inputs[1]) : encoded.end();
            if (mode != "matmulnbits" || it == encoded.end() || !nbits_eligible(node, it->second)) {
                nodes.push_back(std::move(node));
                continue;
            }
            auto w = nbits.find(it->first);
            if (w == nbits.end())
                w = nbits.emplace(it->first, add_nbits_weight(it->second, names, inits)).first;
            const NBitsWeight& nw = w->second;
            const bool has_c =
                node.op_type == "Gemm" && node.inputs.size() > 2 && !node.inputs[2].empty();
            const std::string out =
                has_c ? names.fresh(node.outputs.at(0) + "_matmul") : node.outputs.at(0);
            std::vector<std::string> in{node.inputs[0], nw.b, nw.scales};
            if (!nw.zero_points.empty()) in.push_back(nw.zero_points);
            const std::string base = node.name.empty() ? node.outputs.at(0) : node.name;
            nodes.push_back(make_node(
                names.fresh(base + "_MatMulNBits"), "MatMulNBits", in, {out},
                {int_attr("K", nw.k), int_attr("N", nw.n), int_attr("bits", nw.bits),
                 int_attr("block_size", nw.block), int_attr("accuracy_level", kNBitsAccuracyFp32)},
                kMs));
            if (has_c)
                nodes.push_back(make_node(names.fresh(base + "_bias"), "Add", {out, node.inputs[2]},
                                          {node.outputs.at(0)}));
            used_nbits = true;
        }
        // Every remaining read of an encoded tensor goes through DequantizeLinear.
        g.nodes = std::move(nodes);
        std::unordered_map<std::string, int> reads;
        count_reads(g, reads);
        std::unordered_set<std::string> matmul_reads;
        for (const auto& node : g.nodes)
            if ((node.op_type == "MatMul" || node.op_type == "Gemm") &&
                (node.domain.empty() || node.domain == "ai.onnx"))
                matmul_reads.insert(node.inputs.begin(), node.inputs.end());
        std::vector<Node> pre;
        for (const auto& name : order)
            if (reads[name] > 0) {
                add_dequantize(encoded.at(name), matmul_reads.count(name) > 0, names, inits, pre);
                need_dq = true;
            }
        // A graph input listing an initializer (IR < 4 style) would clash with the
        // DequantizeLinear output of the same name, or name a tensor that is gone.
        std::erase_if(g.inputs, [&](const ValueInfo& v) { return encoded.count(v.name) > 0; });
        pre.insert(pre.end(), std::make_move_iterator(g.nodes.begin()),
                   std::make_move_iterator(g.nodes.end()));
        g.nodes = std::move(pre);
        kept.insert(kept.end(), std::make_move_iterator(inits.begin()),
                    std::make_move_iterator(inits.end()));
        g.initializers = std::move(kept);
    });
    if (need_dq) raise_opset(m, kQdqOpset, names);
    if (used_nbits) {
        m.ir_version = std::max<int64_t>(m.ir_version, 7);
        if (m.opset(kMs) == 0) m.opset_imports.push_back({kMs, 1});
    }
    return m;
}

}  // namespace ep
