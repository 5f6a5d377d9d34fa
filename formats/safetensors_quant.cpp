// Quantized safetensors (contract in safetensors_quant.h).
#include "formats/safetensors_quant.h"

#include <limits>
#include <map>
#include <nlohmann/json.hpp>

namespace ep {

using nlohmann::json;

namespace {

// An encoded tensor (or a streamed replacement's header) to its stored U8 form, with its
// metadata entry.
void to_stored_form(Tensor& t, uint64_t bytes, Model& model) {
    json entry{
        {"encoding", encoding_name(t.encoding)}, {"axis", t.encoding.axis}, {"shape", t.shape}};
    model.metadata.emplace_back(kSafetensorsEncodingPrefix + t.name, entry.dump());
    t.dtype = DType::U8;
    t.shape = {static_cast<int64_t>(bytes)};
    t.encoding = Encoding{};
}

}  // namespace

void encode_for_safetensors_in_place(Model& model, StreamedTensors& streamed) {
    for (const auto& [key, _] : model.metadata)
        if (key.starts_with(kSafetensorsEncodingPrefix))
            throw InputError(cat("metadata key '", key, "' uses the reserved prefix '",
                                 kSafetensorsEncodingPrefix, "'"));
    for (Tensor& t : model.graph.initializers) {
        if (auto it = streamed.find(&t); it != streamed.end()) {
            StreamedTensor& s = it->second;
            if (!s.header.is_encoded()) continue;
            if (s.header.expected_bytes() != s.bytes)
                throw InternalError(cat("tensor '", t.name, "': a streamed tensor of ", s.bytes,
                                        " bytes does not match its header"));
            to_stored_form(s.header, s.bytes, model);
            continue;
        }
        if (!t.is_encoded()) continue;
        t.check_consistent();
        to_stored_form(t, t.data.size(), model);
    }
}

Model encode_for_safetensors(const Model& model) {
    Model out = model;
    StreamedTensors none;
    encode_for_safetensors_in_place(out, none);
    return out;
}

void decode_safetensors_encodings(Model& model) {
    std::map<std::string, Tensor*> by_name;
    for (Tensor& t : model.graph.initializers) by_name[t.name] = &t;
    std::vector<std::pair<std::string, std::string>> kept;
    for (auto& [key, value] : model.metadata) {
        if (!key.starts_with(kSafetensorsEncodingPrefix)) {
            kept.emplace_back(std::move(key), std::move(value));
            continue;
        }
        std::string name = key.substr(std::string_view(kSafetensorsEncodingPrefix).size());
        std::string what = cat("__metadata__ '", key, "'");
        auto it = by_name.find(name);
        if (it == by_name.end()) throw InputError(cat(what, ": no tensor '", name, "'"));
        Tensor& t = *it->second;
        json j;
        try {
            j = json::parse(value);
        } catch (const json::exception& e) {
            throw InputError(cat(what, ": not valid JSON: ", e.what()));
        }
        if (!j.is_object() || j.size() != 3 || !j.contains("encoding") ||
            !j["encoding"].is_string() || !j.contains("axis") || !j["axis"].is_number_unsigned() ||
            !j.contains("shape") || !j["shape"].is_array() || j["shape"].size() > 64)
            throw InputError(cat(what,
                                 ": expected {\"axis\": 0|1, \"encoding\": NAME, "
                                 "\"shape\": [dims]}, found ",
                                 value));
        auto enc = encoding_from_name(j["encoding"].get<std::string>());
        if (!enc || enc->is_none())
            throw InputError(
                cat(what, ": unknown encoding '", j["encoding"].get<std::string>(), "'"));
        auto axis = j["axis"].get<uint64_t>();
        // check_encoding (expected_bytes) says which axes an encoding may name.
        if (axis > std::numeric_limits<uint8_t>::max())
            throw InputError(cat(what, ": axis ", axis, " is out of range"));
        enc->axis = static_cast<uint8_t>(axis);
        std::vector<int64_t> shape;
        for (const json& d : j["shape"]) {
            if (!d.is_number_unsigned() ||
                d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw InputError(cat(what, ": shape dimensions must be non-negative integers"));
            shape.push_back(d.get<int64_t>());
        }
        if (t.dtype != DType::U8 || t.shape.size() != 1)
            throw InputError(cat("tensor '", name,
                                 "': an encoded tensor is stored as U8 of rank 1, "
                                 "found ",
                                 dtype_name(t.dtype), " ", shape_string(t.shape)));
        Tensor decoded = t;
        decoded.dtype = DType::F32;
        decoded.shape = std::move(shape);
        decoded.encoding = *enc;
        decoded.check_consistent();  // names the tensor: size vs encoding x shape
        // int8c keeps f32 scales in its bytes: keep them 4-byte aligned (copy if needed).
        auto bytes = decoded.data.bytes();
        if (reinterpret_cast<uintptr_t>(bytes.data()) % 4 != 0)
            decoded.data = TensorData::owned(std::vector<std::byte>(bytes.begin(), bytes.end()));
        t = std::move(decoded);
    }
    model.metadata = std::move(kept);
}

}  // namespace ep
