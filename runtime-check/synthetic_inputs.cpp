#include "runtime-check/synthetic_inputs.h"

#include <cstring>
#include <random>

#include "ir/checked.h"
#include "runtime-check/ops/op_context.h"

namespace ep::rt {

void parse_shape_override(const std::string& spec, ShapeOverrides& overrides) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0)
        throw InputError(cat("--shape '", spec, "': expected NAME=D0,D1,..."));
    std::vector<int64_t> dims;
    std::string rest = spec.substr(eq + 1);
    size_t pos = 0;
    while (pos <= rest.size()) {
        size_t comma = rest.find(',', pos);
        std::string item =
            rest.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
        char* end = nullptr;
        long long v = std::strtoll(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || v < 0)
            throw InputError(
                cat("--shape '", spec, "': '", item, "' is not a non-negative integer"));
        dims.push_back(v);
        if (comma == std::string::npos) break;
        pos = comma + 1;
    }
    overrides[spec.substr(0, eq)] = dims;
}

int64_t embedding_rows(const Model& model, const std::string& input) {
    for (const auto& n : model.graph.nodes)
        if (n.op_type == "Gather" && n.inputs.size() >= 2 && n.inputs[1] == input)
            if (const Tensor* table = model.graph.find_initializer(n.inputs[0]);
                table && !table->shape.empty())
                return table->shape[static_cast<size_t>(
                    n.attr_int("axis", 0) < 0 ? 0 : n.attr_int("axis", 0))];
    return 0;
}

namespace {

// The shape a random input gets: its --shape override, else its declared shape with
// symbolic or unknown dimensions 1.
std::vector<int64_t> synthetic_shape(const ValueInfo& info, const ShapeOverrides& overrides) {
    std::vector<int64_t> shape;
    if (auto it = overrides.find(info.name); it != overrides.end()) {
        shape = it->second;
    } else if (info.type->shape) {
        for (const auto& d : *info.type->shape) shape.push_back(d.value ? *d.value : 1);
    }
    return shape;
}

// Refuses, before anything is allocated, a random input whose size overflows or is over
// kMaxSyntheticInputBytes: a declared dimension such as 2147483647 is not a size to fill
// with random values.
void check_synthetic_size(const ValueInfo& info, const std::vector<int64_t>& shape,
                          const ShapeOverrides& overrides) {
    const std::string& name = info.name;
    const DType dtype = info.type->elem;
    if (dtype == DType::String)
        throw InputError(
            cat("input '", name, "': cannot synthesize ", dtype_name(dtype), " values"));
    const bool overridden = overrides.count(name) != 0;
    // What the user can do: a declared size is checked against the values fed, so only
    // real values help; an overridden one can be made smaller.
    const std::string remedy =
        overridden
            ? cat("pass a smaller --shape ", name, "=D0,D1,... (in a recipe: validate.shapes)")
            : std::string(
                  "feed real values instead (--input or --data; in a recipe: "
                  "validate.data)");
    const char* whose = overridden ? "the --shape" : "its declared shape";
    for (int64_t d : shape)
        if (d < 0)
            throw InputError(cat("input '", name, "': ", whose, " ", shape_string(shape),
                                 " has a negative dimension"));
    auto count = checked_element_count(shape);
    std::optional<uint64_t> bytes;
    if (count) bytes = storage_bytes(dtype, *count);
    if (bytes && *bytes <= kMaxSyntheticInputBytes) return;
    throw InputError(cat("input '", name, "': random values for ", whose, " ", dtype_name(dtype),
                         " ", shape_string(shape), " would take ",
                         bytes ? cat(*bytes, " bytes") : std::string("more than 2^64 bytes"),
                         ", over the ", kMaxSyntheticInputBytes >> 20,
                         " MiB limit for a synthetic input; ", remedy));
}

}  // namespace

void check_synthetic_inputs(const std::vector<ValueInfo>& inputs, const ShapeOverrides& overrides) {
    for (const auto& info : inputs)
        if (info.type && info.type->is_tensor)
            check_synthetic_size(info, synthetic_shape(info, overrides), overrides);
}

NamedTensors synthetic_inputs(const Executor& executor, uint64_t seed,
                              const ShapeOverrides& overrides) {
    NamedTensors out;
    std::mt19937_64 rng(seed);
    for (const auto& info : executor.inputs()) {
        if (!info.type || !info.type->is_tensor)
            throw InputError(
                cat("input '", info.name, "': no tensor type declared; cannot synthesize it"));
        std::vector<int64_t> shape = synthetic_shape(info, overrides);
        check_synthetic_size(info, shape, overrides);
        Tensor t = make_tensor(info.type->elem, shape);
        t.name = info.name;
        int64_t n = t.element_count();
        DType dt = info.type->elem;
        if (dt == DType::F32) {
            std::uniform_real_distribution<float> dist(0.0f, 1.0f);
            for (auto& v : t.mutable_values<float>()) v = dist(rng);
        } else if (dt == DType::F64) {
            std::uniform_real_distribution<double> dist(0.0, 1.0);
            for (auto& v : t.mutable_values<double>()) v = dist(rng);
        } else if (dt == DType::F16 || dt == DType::BF16) {
            std::uniform_real_distribution<float> dist(0.0f, 1.0f);
            for (auto& v : t.mutable_values<uint16_t>())
                v = dt == DType::F16 ? float_to_half(dist(rng)) : float_to_bf16(dist(rng));
        } else if (dt == DType::Bool) {
            for (auto& v : t.mutable_values<uint8_t>()) v = rng() & 1;
        } else if (traits(dt).kind == DTypeKind::SignedInt ||
                   traits(dt).kind == DTypeKind::UnsignedInt) {
            int64_t range = embedding_rows(executor.model(), info.name);
            if (range <= 0) range = 100;
            size_t width = static_cast<size_t>(traits(dt).bits / 8);
            auto bytes = t.data.mutable_bytes();
            for (int64_t i = 0; i < n; ++i) {
                int64_t v = static_cast<int64_t>(rng() % static_cast<uint64_t>(range));
                std::memcpy(bytes.data() + static_cast<size_t>(i) * width, &v,
                            width);  // little-endian truncation
            }
        } else {
            throw InputError(
                cat("input '", info.name, "': cannot synthesize ", dtype_name(dt), " values"));
        }
        out.emplace_back(info.name, std::move(t));
    }
    return out;
}

}  // namespace ep::rt
